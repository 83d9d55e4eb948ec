"""The held-out set an adapter is evaluated on, read and checked once.

- A held-out folder (evals/ for the project's character, or `--heldout DIR`): persona
  conversations with reference replies, scripted multi-turn conversations, generic questions
  and generic assistant lines (see evals/README.md). Its `character.json` names the character
  its persona parts were written for.
- For any other character, its own dataset's eval split (the samples the adapter was never
  trained on, kept in the adapter folder as eval_split.jsonl): each sample's real last reply is
  the reference; the generic parts (questions, assistant lines) come from evals/, since they do
  not depend on the character.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.files import json_error_reason, json_lines
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
    source: str = "evals/"  # where the persona parts came from, for the report

    def limited(self, n: int | None) -> HeldOut:
        """The first n of each part (for quick runs and tests)."""
        if n is None:
            return self
        return HeldOut(self.persona[:n], self.qa[:n], self.scripts[:n], self.assistant_lines, self.source)

    def texts(self) -> set[str]:
        """Every prompt and reference, for checking that none leaks into training data."""
        found = {item.reference for item in self.persona} | {t.text for item in self.persona for t in item.context}
        found |= {q.question for q in self.qa}
        found |= {t.say for s in self.scripts for t in s.turns} | {t.reference for s in self.scripts for t in s.turns}
        return found


def read_text(path: Path) -> str:
    """A held-out file's text: missing, a folder or not UTF-8 is a one-line error naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: missing from the held-out folder (see evals/README.md for its files)") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.strerror})") from None


def numbered_json_lines(path: Path) -> list[tuple[int, object]]:
    """(line number, row) of every row, for errors that name file:line."""
    rows = []
    for number, line in json_lines(read_text(path)):
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
            raise UserError(f"{path}:{number}: not JSON ({json_error_reason(exc)})") from None
    return rows


def read_json_lines(path: Path) -> list[dict]:
    return [row for _, row in numbered_json_lines(path)]


def folder_character(folder: Path) -> str | None:
    """The character a held-out folder's persona parts were written for (character.json)."""
    path = folder / "character.json"
    try:
        return json.loads(read_text(path))["name"] if path.is_file() else None
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: expected {{\"name\": \"...\"}} ({exc})") from None


def persona_items(records, card: PersonaCard) -> list[PersonaItem]:
    items = []
    for record in records:
        turns = record_turns(record.instruction, record.input, record.output, card)
        items.append(PersonaItem(record.to_json(), turns[:-1], turns[-1].text))
    return items


def generic_parts(folder: Path) -> tuple[list[QAItem], list[str]]:
    """The character-independent parts: generic questions with their answers, assistant lines."""
    path = folder / "generic_qa.jsonl"
    qa = [qa_item(row, f"{path}:{number}") for number, row in numbered_json_lines(path)]
    assistant = [line for _, line in json_lines(read_text(folder / "assistant_lines.txt"))]
    return qa, [line.strip() for line in assistant]


def qa_item(row: object, where: str) -> QAItem:
    """A generic question and its accepted answers. `answers` must be a list of words: a bare
    string ("Paris") would become its letters, and "I" in any reply would count as right."""
    question, answers = (row.get("question"), row.get("answers")) if isinstance(row, dict) else (None, None)
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: question: expected the question as text")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise UserError(f"{where}: answers: expected a non-empty list of non-empty strings, such as [\"Paris\"]")
    return QAItem(question, tuple(answers))


def load_heldout(card: PersonaCard, folder: Path = EVALS_DIR) -> HeldOut:
    if not folder.is_dir():
        raise UserError(f"{folder}: the held-out evaluation set is missing")
    written_for = folder_character(folder)
    if written_for is not None and written_for != card.name:
        raise UserError(f"{folder}: its persona conversations were written for {written_for}, not {card.name}; "
                        f"evaluate with --heldout DIR (a folder for {card.name}), or without it to use the dataset's eval split")
    if not (folder / "persona.jsonl").is_file():
        raise UserError(f"{folder / 'persona.jsonl'}: missing from the held-out folder (see evals/README.md for its files)")
    records, problems, _ = load_records([folder / "persona.jsonl"], card, None, None)
    if problems:
        raise UserError("held-out persona set: " + "; ".join(str(p) for p in problems[:5]))
    try:
        scripts = [Script(r["name"], tuple(ScriptTurn(t["say"], t["reference"], tuple(t.get("expect", ()))) for t in r["turns"]))
                   for r in read_json_lines(folder / "multi_turn.jsonl")] if (folder / "multi_turn.jsonl").is_file() else []
    except (KeyError, TypeError) as exc:
        raise UserError(f"{folder}: a held-out script row lacks {exc}") from None
    qa, assistant = generic_parts(folder if (folder / "generic_qa.jsonl").is_file() else EVALS_DIR)
    return HeldOut(persona_items(records, card), qa, scripts, assistant, str(folder))


def heldout_from_split(split: Path, card: PersonaCard) -> HeldOut:
    """A character's own eval split (eval.jsonl as the data build writes it) as the persona part,
    with the generic parts of evals/."""
    from trainer.dataset.records import Origin, Record

    records = []
    for row in read_json_lines(split):
        record = Record(row["instruction"], row["input"], row["output"], row["source"], Origin(str(split), 0), row["messages"])
        records.append(record)
    if not records:
        raise UserError(f"{split}: the eval split is empty; evaluate with --heldout DIR")
    qa, assistant = generic_parts(EVALS_DIR)
    items = persona_items(records, card)
    return HeldOut(items, qa, [], assistant, f"the eval split of {card.name}'s dataset ({len(items)} samples)")
