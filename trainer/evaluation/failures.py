"""What a persona reply must never do, each checked on the model's raw output (before the bot's
clean-up, which hides some of it from users but not from the model's habits)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from core.persona import PersonaCard
from core.transcript_labels import speaker_line

# Generic assistant phrasing: the voice a persona adapter is meant to replace.
ASSISTANT_SPEAK = re.compile(
    r"\b(as an ai|as a language model|ai language model|i'?m (just )?an ai|i am (just )?an ai|i'?m here to help|"
    r"i am here to help|how (can|may) i (help|assist)|i'?d be happy to help|happy to help|glad to help|"
    r"i'?m sorry,? but|i cannot (help|assist)|i can'?t (help|assist) with|i don'?t have (personal|feelings)|"
    r"is there anything else|let me know if|feel free to|i hope this helps|as an assistant|virtual assistant)\b",
    re.IGNORECASE,
)

FAILURE_KINDS = ("assistant_speak", "invented_speaker", "never_stops", "empty", "repetition")


@dataclass(frozen=True)
class Failures:
    assistant_speak: bool
    invented_speaker: bool
    never_stops: bool
    empty: bool
    repetition: bool

    @property
    def any(self) -> bool:
        return any(getattr(self, kind) for kind in FAILURE_KINDS)


def has_assistant_speak(text: str) -> bool:
    return bool(ASSISTANT_SPEAK.search(text))


def has_invented_speaker(text: str, card: PersonaCard) -> bool:
    """A line that opens with someone else's label (`You:`, `User:`, `Zenitsu:`): the model
    writing the next speaker's turn. The persona's own label on the first line is allowed."""
    for line in text.split("\n"):
        found = speaker_line(line)
        if found and found[0] not in card.aliases:
            return True
    return False


def is_repetition_loop(text: str, n: int = 3, times: int = 3) -> bool:
    """Some run of n words said `times` times or more ("I'm a giant! I'm a giant! I'm a giant!")."""
    words = re.findall(r"[\w']+", text.lower())
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def check(raw: str, ended: bool, card: PersonaCard) -> Failures:
    from core.generate import reply_text

    return Failures(
        assistant_speak=has_assistant_speak(raw),
        invented_speaker=has_invented_speaker(raw, card),
        never_stops=not ended,
        empty=not reply_text(raw, card).strip(". \n"),
        repetition=is_repetition_loop(raw),
    )
