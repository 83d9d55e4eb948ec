"""Remove duplicate samples: exact copies, and copies that differ only in case, spacing or
punctuation. The first occurrence is kept; every removal is reported with what it duplicates."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from trainer.dataset.records import Record


@dataclass(frozen=True)
class Duplicate:
    removed: Record
    kept: Record
    exact: bool

    def __str__(self) -> str:
        kind = "exact duplicate" if self.exact else "duplicate after normalizing case/space/punctuation"
        return f"{self.removed.origin}: {kind} of {self.kept.origin}"


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(kept.split())


def dedupe(records: list[Record]) -> tuple[list[Record], list[Duplicate]]:
    exact: dict[tuple[str, str, str], Record] = {}
    loose: dict[tuple[str, str, str], Record] = {}
    kept, removed = [], []
    for record in records:
        key = (record.instruction, record.input, record.output)
        loose_key = tuple(normalize(part) for part in key)
        if key in exact:
            removed.append(Duplicate(record, exact[key], exact=True))
        elif loose_key in loose:
            removed.append(Duplicate(record, loose[loose_key], exact=False))
        else:
            exact[key] = loose[loose_key] = record
            kept.append(record)
    return kept, removed
