"""Run as: python -m tools.compose            write data/*.jsonl from the hand-written lines here
       python -m tools.compose --check    only check the lines (counts, reuse, held-out leaks)

The curated dataset in data/ is composed, deterministically, from hand-written Python lists in
this folder. Every reply is written for the exact line it answers: nothing is recombined, so
no reply ever answers a sibling variant of its prompt. Edit the lists and rerun; the JSONL
files are the output.

- persona_pairs.py    PAIRS: (question about Inosuke, his answer)
- quote_pairs.py      QUOTES: (situation, his line in it)
- qa_pairs.py         QA: (ordinary question, correct answer in his voice); ARITHMETIC: computed
- conversations_*.py  CONVERSATIONS: lists of "Speaker: text" lines ending with an Inosuke line

Checks (the command fails on any): every conversation has 2 to 6 turns once consecutive lines of
the same side are merged and ends with Inosuke; no Inosuke line is used more than MAX_REUSE
times; no prompt or reference of the held-out set (evals/) appears; arithmetic answers state the
computed result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
EVALS = ROOT / "evals"
PERSONA = "Inosuke"
CONTINUE = "Continue the conversation as Inosuke."
MAX_REUSE = 3
SPEAKER = re.compile(r"^([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}): (.+)$")


def sample(instruction: str, output: str, input: str = "") -> dict:
    return {"instruction": instruction, "input": input, "output": output}


def content_module(name: str):
    return importlib.import_module(f"tools.compose.{name}")


def conversation_modules() -> list:
    folder = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("conversations_"))
    return [content_module(name) for name in names]


def heldout_texts() -> set[str]:
    """Every prompt and reference of the held-out set: never composed into training data."""
    texts: set[str] = set()
    for line in (EVALS / "generic_qa.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.add(json.loads(line)["question"])
    for line in (EVALS / "multi_turn.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            for turn in json.loads(line)["turns"]:
                texts |= {turn["say"], turn["reference"]}
    for line in (EVALS / "persona.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts |= {row["output"].split(": ", 1)[-1]}
            if row["instruction"] != CONTINUE:  # the fixed directive of every multi-turn sample is no prompt
                texts.add(row["instruction"])
            texts |= {l.split(": ", 1)[-1] for l in row["input"].splitlines()}
    return texts


def turns_of(lines: list[str]) -> int:
    """Chat turns once consecutive lines of the same side (Inosuke / everybody else) merge."""
    sides = [SPEAKER.match(l).group(1) == PERSONA for l in lines]
    return 1 + sum(a != b for a, b in zip(sides, sides[1:]))


def compose() -> tuple[dict[str, list[dict]], list[str]]:
    """The samples of each source, and every problem found."""
    problems: list[str] = []
    pairs = content_module("persona_pairs").PAIRS
    quotes = content_module("quote_pairs").QUOTES
    qa_module = content_module("qa_pairs")
    qa = list(qa_module.QA) + [(question, answer) for question, answer, _ in qa_module.arithmetic()]
    for question, answer, result in qa_module.arithmetic():
        if not re.search(rf"(?<![\d.]){result}(?![\d.])", answer.replace(",", "")):
            problems.append(f"qa_pairs: {question!r}: the answer does not state the computed result {result}")
    conversations = [c for module in conversation_modules() for c in module.CONVERSATIONS]

    sources = {
        "persona": [sample(q, a) for q, a in pairs],
        "quotes": [sample(s, line) for s, line in quotes],
        "generic_qa": [sample(q, a) for q, a in qa],
        "conversations": [],
    }
    for number, lines in enumerate(conversations, 1):
        where = f"conversation {number} ({lines[0][:40]!r})" if lines else f"conversation {number}"
        bad = [l for l in lines if not SPEAKER.match(l)]
        if not lines or bad:
            problems.append(f"{where}: every line needs a 'Speaker: text' prefix: {bad[:1]}")
            continue
        if SPEAKER.match(lines[-1]).group(1) != PERSONA:
            problems.append(f"{where}: must end with an Inosuke line")
            continue
        if not 2 <= turns_of(lines) <= 6:
            problems.append(f"{where}: {turns_of(lines)} turns (2 to 6 wanted)")
        sources["conversations"].append(sample(CONTINUE, lines[-1], "\n".join(lines[:-1])))

    heldout = heldout_texts()
    uses: Counter[str] = Counter()
    for name, rows in sources.items():
        for row in rows:
            spoken = [row["instruction"], row["output"].removeprefix(f"{PERSONA}: ")]
            spoken += [l.split(": ", 1)[-1] for l in row["input"].splitlines()]
            leaked = heldout.intersection(spoken)
            if leaked:
                problems.append(f"{name}: held-out text used: {sorted(leaked)[0]!r}")
            persona_lines = [row["output"].removeprefix(f"{PERSONA}: ")]
            persona_lines += [l.split(": ", 1)[1] for l in row["input"].splitlines() if l.startswith(f"{PERSONA}: ")]
            uses.update(persona_lines)
    for line, count in uses.most_common():
        if count <= MAX_REUSE:
            break
        problems.append(f"Inosuke line used {count} times (at most {MAX_REUSE}): {line!r}")
    return sources, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compose")
    parser.add_argument("--check", action="store_true", help="check only, write nothing")
    args = parser.parse_args(argv)
    sources, problems = compose()
    persona_lines = Counter()
    for rows in sources.values():
        for row in rows:
            persona_lines[row["output"].removeprefix(f"{PERSONA}: ")] += 1
            persona_lines.update(l.split(": ", 1)[1] for l in row["input"].splitlines() if l.startswith(f"{PERSONA}: "))
    for name, rows in sources.items():
        print(f"{name}: {len(rows)} samples")
    print(f"total: {sum(len(r) for r in sources.values())} samples, {len(persona_lines)} distinct Inosuke lines, "
          f"most used {persona_lines.most_common(1)[0][1] if persona_lines else 0} times")
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if not args.check:
        for name, rows in sources.items():
            path = DATA / f"{name}.jsonl"
            path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
