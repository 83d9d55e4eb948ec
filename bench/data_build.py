"""Run as: .venv/bin/python bench/data_build.py [--rows 10000]

`trainer data build` at the reference experiment's size (9,259 Alpaca samples; 10,000 rows here),
with and without the data-quality report, each in a fresh process: wall time and peak memory.
The rows are the curated data/ cycled with a numbered variation of every prompt and reply, so
they stay distinct for the de-duplicator but many are near-duplicates of one another: the
report's heaviest case.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.files import read_jsonl, write_jsonl
from core.paths import DATA_DIR, DEFAULT_CARD


def synthetic_rows(count: int) -> dict[str, list[dict]]:
    sources = {path.stem: read_jsonl(path) for path in sorted(DATA_DIR.glob("*.jsonl"))}
    total = sum(len(rows) for rows in sources.values())
    out = {}
    for name, rows in sources.items():
        wanted = round(count * len(rows) / total)
        out[name] = [{**row, "instruction": f"{row['instruction']} ({n // len(rows)})" if n >= len(rows) else row["instruction"],
                      "output": f"{row['output']} Round {n // len(rows)}!" if n >= len(rows) else row["output"]}
                     for n in range(wanted) for row in [rows[n % len(rows)]]]
    return out


def timed_build(data: Path, out: Path, quality: bool) -> tuple[float, float]:
    command = [sys.executable, "-m", "trainer", "data", "build", "--data", str(data), "--card", str(DEFAULT_CARD),
               "--out", str(out)] + ([] if quality else ["--skip-quality"])
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for name, rows in synthetic_rows(args.rows).items():
            write_jsonl(data / f"{name}.jsonl", rows)
        print(f"{sum(len(read_jsonl(p)) for p in data.glob('*.jsonl')):,} rows")
        plain, plain_peak = timed_build(data, Path(tmp) / "plain", quality=False)
        full, full_peak = timed_build(data, Path(tmp) / "full", quality=True)
        report = json.loads((Path(tmp) / "full" / "quality.json").read_text())
    print(f"build without the report: {plain:.1f} s, peak RSS {plain_peak:.0f} MiB")
    print(f"build with the report:    {full:.1f} s, peak RSS {max(full_peak, plain_peak):.0f} MiB "
          f"(report itself {report['seconds']} s; target: under 120 s in all)")
    print("warnings: " + ", ".join(f["name"] for f in report["findings"] if f["warning"]))


if __name__ == "__main__":
    main()
