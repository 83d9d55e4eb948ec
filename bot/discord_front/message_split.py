"""Split a reply into Discord messages of at most 2,000 characters, at the most natural
boundary available: paragraph, line, sentence, word, and only as a last resort mid-word."""

from __future__ import annotations

import re

DISCORD_LIMIT = 2000
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    text = text.strip()
    chunks = []
    while len(text) > limit:
        window = text[: limit + 1]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0)
        if cut < limit // 3:  # no line break in a useful place: try the last sentence end
            ends = [m.end() for m in SENTENCE_END.finditer(window) if m.start() <= limit]
            cut = ends[-1] if ends and ends[-1] >= limit // 3 else window.rfind(" ")
        if cut < limit // 3:
            cut = limit  # one enormous word
        chunk, text = text[:cut].rstrip(), text[cut:].lstrip()
        if chunk:
            chunks.append(chunk)
    if text:
        chunks.append(text)
    return chunks
