"""Check a raw row and make it a Record with chat messages, or say exactly what is wrong."""

from __future__ import annotations

from typing import Callable

from core.persona import PersonaCard
from core.prompt import Turn, chat_messages, continue_instruction, transcript
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
    if isinstance(data, dict) and "messages" in data:
        return validate_chat_row(row, persona, max_tokens, count_tokens)
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


def validate_chat_row(
    row: RawRow, persona: PersonaCard, max_tokens: int | None = None, count_tokens: TokenCounter | None = None
) -> Record | list[Problem]:
    """A row in chat format: {"messages": [{"role": "user", "content": ..., "name": "Tanjiro"},
    {"role": "assistant", "content": ...}, ...]}, as exported from approved chat logs. A system
    message is ignored (the persona card is the system message); `name` labels a user line in a
    group conversation exactly as the bot labelled it."""
    messages = row.data["messages"]
    if not isinstance(messages, list) or not messages:
        return [Problem(row.origin, "messages", "expected a non-empty list of {role, content} objects")]
    problems, turns = [], []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(Problem(row.origin, where, "expected an object with role and content"))
            continue
        role, content, name = message.get("role"), message.get("content"), message.get("name")
        if role not in ("system", "user", "assistant"):
            problems.append(Problem(row.origin, f"{where}.role", f"expected system, user or assistant, got {role!r}"))
        if not isinstance(content, str) or not content.strip():
            problems.append(Problem(row.origin, f"{where}.content", "missing or empty"))
        if name is not None and (not isinstance(name, str) or not name.strip()):
            problems.append(Problem(row.origin, f"{where}.name", "must be non-empty text when given"))
        if not problems and role != "system":
            turns.append(Turn(content, by_persona=role == "assistant", speaker=name if role == "user" else None))
    if problems:
        return problems
    if not turns or not turns[-1].by_persona:
        return [Problem(row.origin, "messages", f"must end with a reply by {persona.name} (role assistant)")]
    if len(turns) == 2 and not turns[0].by_persona and not turns[0].speaker:
        instruction, input, output = turns[0].text, "", turns[1].text
    else:
        instruction, input = continue_instruction(persona), transcript(persona, turns[:-1])
        output = transcript(persona, turns[-1:])
    chat = chat_messages(persona, turns)
    if max_tokens is not None and count_tokens is not None:
        length = count_tokens(chat)
        if length > max_tokens:
            return [Problem(row.origin, "sample", f"{length} tokens, over the limit of {max_tokens} (the model's context or the profile's max_seq_len)")]
    reply_id = row.data.get("reply_id")
    return Record(instruction, input, output, row.source, row.origin, chat, reply_id if isinstance(reply_id, int) else None)
