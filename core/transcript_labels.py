"""Speaker labels in transcripts (`You: ...`, `Inosuke: ...`): how a labelled line is recognised."""

from __future__ import annotations

import re

# A speaker label: up to three capitalised words (names like "Zenitsu", "Tanjiro Kamado",
# "Old Man Urokodaki"), then a colon. Lowercase words ("note that: ...") are not labels.
SPEAKER = re.compile(r"^\s*((?:[A-Z][\w'.-]*)(?: [A-Z][\w'.-]*){0,2})\s*:(?:\s+|$)(.*)$")
ANONYMOUS_USERS = ("You", "User")


def speaker_line(line: str) -> tuple[str, str] | None:
    """(label, text) when the line opens with a speaker prefix."""
    match = SPEAKER.match(line)
    return (match.group(1), match.group(2)) if match else None
