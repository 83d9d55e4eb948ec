"""The GPU check's kit (tools/device_kit.py, tools/gpu_check.sh): what a lent GPU machine lacks,
at the versions this project is tested with, small enough for one device call."""

from __future__ import annotations

import os
import subprocess
import zipfile
from importlib import metadata

from core.paths import PROJECT_ROOT
from tools.device_kit import KIT_PACKAGES, locked_versions, slim_bitsandbytes


def test_the_kit_carries_the_versions_this_project_is_tested_with():
    """Each package of the kit is pinned by requirements.lock, at the version installed here."""
    pins = locked_versions()
    for name in KIT_PACKAGES:
        key = name.lower().replace("_", "-")
        assert key in pins, f"{name}: not in requirements.lock"
        assert metadata.version(name) == pins[key]


def test_bitsandbytes_travels_with_the_cuda_13_library_alone(tmp_path):
    """The 43 MB wheel holds a library per CUDA and ROCm version; the kit keeps CUDA 13's (the GPU
    image's torch) and the CPU one, and RECORD lists exactly what the wheel holds."""
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    libraries = ["cpu", "cuda118", "cuda128", "cuda130", "cuda132", "rocm64", "xpu2026"]
    files = {"bitsandbytes/__init__.py": "x = 1\n", **{f"bitsandbytes/libbitsandbytes_{lib}.so": lib * 100 for lib in libraries}}
    record = "".join(f"{name},sha256=abc,{len(body)}\n" for name, body in files.items())
    with zipfile.ZipFile(wheel, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", record + "bitsandbytes-0.50.2.dist-info/RECORD,,\n")
    slim_bitsandbytes(wheel)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        listed = {line.split(",")[0] for line in z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode().splitlines() if line}
    kept = {f"bitsandbytes/libbitsandbytes_{lib}.so" for lib in ("cpu", "cuda130", "cuda132")}
    assert {n for n in names if n.endswith(".so")} == kept
    assert listed == names and "bitsandbytes/__init__.py" in names


def test_the_gpu_check_without_its_kit_says_how_to_make_it(tmp_path):
    done = subprocess.run(["bash", str(PROJECT_ROOT / "tools" / "gpu_check.sh")], capture_output=True, text=True,
                          env=dict(os.environ, KIT=str(tmp_path / "none"), OUT=str(tmp_path / "out")))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"no wheels in {tmp_path / 'none'}/wheels: run `make gpu-kit` here first "
                                                f"and carry {tmp_path / 'none'}"]
