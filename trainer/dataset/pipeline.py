"""Build the training dataset from a data folder: every file ingested, every row validated,
duplicates removed, records turned into chat messages, split, counted and drawn.

Bad rows never vanish: without a rejects file the build fails listing every problem (and leaves
any earlier build untouched); with one, they are written there and counted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.files import write_atomic, write_jsonl
from core.persona import PersonaCard
from trainer.dataset.dedup import Duplicate, dedupe
from trainer.dataset.readers import SUPPORTED_SUFFIXES, read_source
from trainer.dataset.records import Problem, RawRow, Record
from trainer.dataset.split import split
from trainer.dataset.stats import SourceCount, composition, draw_pie
from trainer.dataset.validate import TokenCounter, validate_row


class DataErrors(UserError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(
            f"{len(problems)} problem(s) in the data; fix them, or pass --rejects FILE to set those rows aside:\n{lines}"
        )


@dataclass
class BuildResult:
    files: list[Path]
    train: list[Record]
    eval: list[Record]
    problems: list[Problem]
    rejected_rows: int
    duplicates: list[Duplicate]
    composition: list[SourceCount]
    data_hash: str


def source_files(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such data folder")
    files = sorted(readable_path(p) for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not files:
        raise UserError(f"{data_dir}: no data files ({', '.join(SUPPORTED_SUFFIXES)})")
    return files


def readable_path(path: Path) -> Path:
    """The path relative to the working directory when it lies below it: `data/x.jsonl:12`
    reads better in a problem report than an absolute path."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def load_records(
    files: list[Path], persona: PersonaCard, max_tokens: int | None, count_tokens: TokenCounter | None
) -> tuple[list[Record], list[Problem], list[RawRow]]:
    """Valid records, all problems, and the rows that had them."""
    records, problems, bad_rows = [], [], []
    for path in files:
        rows, unreadable = read_source(path, persona)
        problems += unreadable
        for row in rows:
            checked = validate_row(row, persona, max_tokens, count_tokens)
            if isinstance(checked, Record):
                records.append(checked)
            else:
                problems += checked
                bad_rows.append(row)
    return records, problems, bad_rows


def check_output(path: Path, what: str, folder: bool) -> None:
    """An output path that cannot be written is refused before anything is written: a build that
    failed half way would leave train.jsonl new and dataset.json old."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path and path.is_dir() != folder:
        raise UserError(f"{path}: is a {'file' if folder else 'folder'}; expected {what} here")
    if existing != path and not existing.is_dir():
        raise UserError(f"{path}: {existing} is a file, not a folder; cannot write {what} there")


def build_dataset(
    data_dir: Path,
    persona: PersonaCard,
    out_dir: Path,
    *,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    eval_fraction: float = 0.05,
    seed: int = 0,
    rejects: Path | None = None,
) -> BuildResult:
    check_output(out_dir, "the dataset folder", folder=True)
    if rejects is not None:
        check_output(rejects, "the rejects file", folder=False)
    files = source_files(data_dir)
    records, problems, bad_rows = load_records(files, persona, max_tokens, count_tokens)
    if problems and rejects is None:
        raise DataErrors(problems)
    kept, duplicates = dedupe(records)
    if not kept:
        raise UserError(f"{data_dir}: no valid samples left")
    train, evaluation = split(kept, eval_fraction, seed)
    rows = composition(kept)
    data_hash = hashlib.sha256(
        "\n".join(json.dumps(r.to_json(), sort_keys=True) for r in train + evaluation).encode("utf-8")
    ).hexdigest()

    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "train.jsonl", [r.to_json() for r in train])
    write_jsonl(out_dir / "eval.jsonl", [r.to_json() for r in evaluation])
    if rejects is not None:
        by_origin: dict[str, list[str]] = {}
        for problem in problems:
            by_origin.setdefault(str(problem.origin), []).append(f"{problem.field}: {problem.reason}")
        row_origins = {str(r.origin) for r in bad_rows}
        unreadable = [p for p in problems if str(p.origin) not in row_origins]
        write_jsonl(
            rejects,
            [{"origin": str(r.origin), "problems": by_origin.get(str(r.origin), []), "row": r.data} for r in bad_rows]
            + [{"origin": str(p.origin), "problems": [f"{p.field}: {p.reason}"], "row": None} for p in unreadable],
        )
    summary = {
        "data_dir": str(data_dir),
        "files": [str(f) for f in files],
        "persona": persona.name,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "max_tokens": max_tokens,
        "samples": len(kept),
        "train": len(train),
        "eval": len(evaluation),
        "rejected": len(problems),
        "duplicates_removed": len(duplicates),
        "data_hash": data_hash,
        "composition": [vars(r) for r in rows],
    }
    write_atomic(out_dir / "dataset.json", json.dumps(summary, indent=2) + "\n")
    draw_pie(rows, out_dir / "composition.png", f"{persona.name} dataset")
    return BuildResult(files, train, evaluation, problems, len(bad_rows), duplicates, rows, data_hash)
