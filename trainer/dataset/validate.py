"""Check a raw row and make it a Record with chat messages, or say exactly what is wrong."""

from __future__ import annotations

from typing import Callable

from bot.persona import PersonaCard
from bot.prompt import chat_messages
from trainer.dataset.records import Problem, RawRow, Record
from trainer.dataset.transcript import is_transcript, record_turns, split_transcript

REQUIRED = ("instruction", "output")
OPTIONAL = ("input",)

TokenCounter = Callable[[list[dict[str, str]]], int]


def validate_row(
    row: RawRow, persona: PersonaCard, max_tokens: int | None = None, count_tokens: TokenCounter | None = None
) -> Record | list[Problem]:
    """A Record, or every problem found in the row (not just the first)."""
    data = row.data
    if not isinstance(data, dict):
        return [Problem(row.origin, "record", f"expected an object with instruction/input/output, got {type(data).__name__}")]
    problems: list[Problem] = []
    values: dict[str, str] = {}
    for name in REQUIRED + OPTIONAL:
        value = data.get(name)
        if value is None:
            if name in REQUIRED:
                problems.append(Problem(row.origin, name, "missing"))
            values[name] = ""
        elif not isinstance(value, str):
            problems.append(Problem(row.origin, name, f"expected text, got {type(value).__name__}"))
        elif name in REQUIRED and not value.strip():
            problems.append(Problem(row.origin, name, "is empty"))
        else:
            values[name] = value
    if problems:
        return problems

    instruction, input, output = values["instruction"], values["input"], values["output"]
    if (is_transcript(input, persona) or is_transcript(output, persona)) and not any(
        t.by_persona for t in split_transcript(output, persona, default_persona=True)
    ):
        return [Problem(row.origin, "output", f"has no reply by {persona.name}, only other speakers' lines")]
    messages = chat_messages(persona, record_turns(instruction, input, output, persona))
    if max_tokens is not None and count_tokens is not None:
        length = count_tokens(messages)
        if length > max_tokens:
            return [Problem(row.origin, "sample", f"{length} tokens, over the limit of {max_tokens} (the model's context or the profile's max_seq_len)")]
    return Record(instruction, input, output, row.source, row.origin, messages)
