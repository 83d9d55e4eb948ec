"""Deterministic train/eval split, stratified by source.

Within each source, samples are ordered by a hash of their content and the seed, and the first
`eval_fraction` of them (at least one, for a source of two or more) go to eval. The same data and
seed always give the same split, whatever order the files were read in.
"""

from __future__ import annotations

import hashlib
import math

from trainer.dataset.records import Record


def content_hash(record: Record, seed: int) -> str:
    text = "\x1f".join((str(seed), record.instruction, record.input, record.output))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split(records: list[Record], eval_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    by_source: dict[str, list[Record]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    train, evaluation = [], []
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda r: content_hash(r, seed))
        n_eval = math.ceil(len(group) * eval_fraction) if eval_fraction and len(group) > 1 else 0
        evaluation += group[:n_eval]
        train += group[n_eval:]
    return train, evaluation
