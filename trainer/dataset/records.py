"""What flows through the data pipeline: raw rows with their origin, validated records, problems."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Origin:
    """Where a row came from, for messages that name file and line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class RawRow:
    """One sample as read from a file, not yet checked. `source` tags it (the file's stem)."""

    data: object
    origin: Origin
    source: str


@dataclass(frozen=True)
class Problem:
    origin: Origin
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.field}: {self.reason}"


@dataclass
class Record:
    """A validated Alpaca-format sample plus its chat messages (system = persona card)."""

    instruction: str
    input: str
    output: str
    source: str
    origin: Origin
    messages: list[dict[str, str]] = field(default_factory=list)
    reply_id: int | None = None  # the bot's reply a chat-log sample was made from (/forget-me finds it by this)

    def to_json(self) -> dict:
        row = {
            "source": self.source,
            "origin": str(self.origin),
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "messages": self.messages,
        }
        return row | ({"reply_id": self.reply_id} if self.reply_id is not None else {})
