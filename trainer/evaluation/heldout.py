"""The fixed held-out set in evals/ (see evals/README.md), read and checked once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.files import json_lines
from core.paths import PROJECT_ROOT
from core.persona import PersonaCard
from core.prompt import Turn
from trainer.dataset.pipeline import load_records
from trainer.dataset.transcript import record_turns

EVALS_DIR = PROJECT_ROOT / "evals"


@dataclass(frozen=True)
class PersonaItem:
    """A conversation whose last persona line is the reference reply."""

    sample: dict  # the record as the data pipeline writes it (for the loss)
    context: list[Turn]  # what the model is asked to answer
    reference: str


@dataclass(frozen=True)
class QAItem:
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ScriptTurn:
    say: str
    reference: str
    expect: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    name: str
    turns: tuple[ScriptTurn, ...]


@dataclass(frozen=True)
class HeldOut:
    persona: list[PersonaItem]
    qa: list[QAItem]
    scripts: list[Script]
    assistant_lines: list[str] = field(default_factory=list)

    def limited(self, n: int | None) -> HeldOut:
        """The first n of each part (for quick runs and tests)."""
        if n is None:
            return self
        return HeldOut(self.persona[:n], self.qa[:n], self.scripts[:n], self.assistant_lines)

    def texts(self) -> set[str]:
        """Every prompt and reference, for checking that none leaks into training data."""
        found = {item.reference for item in self.persona} | {t.text for item in self.persona for t in item.context}
        found |= {q.question for q in self.qa}
        found |= {t.say for s in self.scripts for t in s.turns} | {t.reference for s in self.scripts for t in s.turns}
        return found


def read_json_lines(path: Path) -> list[dict]:
    rows = []
    for number, line in json_lines(path.read_text(encoding="utf-8")):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return rows


def load_heldout(card: PersonaCard, folder: Path = EVALS_DIR) -> HeldOut:
    if not folder.is_dir():
        raise UserError(f"{folder}: the held-out evaluation set is missing")
    records, problems, _ = load_records([folder / "persona.jsonl"], card, None, None)
    if problems:
        raise UserError("held-out persona set: " + "; ".join(str(p) for p in problems[:5]))
    persona = []
    for record in records:
        turns = record_turns(record.instruction, record.input, record.output, card)
        persona.append(PersonaItem(record.to_json(), turns[:-1], turns[-1].text))
    try:
        qa = [QAItem(r["question"], tuple(r["answers"])) for r in read_json_lines(folder / "generic_qa.jsonl")]
        scripts = [Script(r["name"], tuple(ScriptTurn(t["say"], t["reference"], tuple(t.get("expect", ()))) for t in r["turns"]))
                   for r in read_json_lines(folder / "multi_turn.jsonl")]
    except (KeyError, TypeError) as exc:
        raise UserError(f"{folder}: a held-out QA or script row lacks {exc}") from None
    assistant = [line.strip() for line in (folder / "assistant_lines.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    return HeldOut(persona, qa, scripts, assistant)
