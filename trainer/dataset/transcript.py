"""Turn an Alpaca record into conversation turns for the chat format.

Multi-turn samples carry a transcript in input/output with speaker prefixes (`You:` /
`Inosuke:` in the seed). Lines are split on those prefixes so that the persona's lines become
assistant turns, which are trained, and everybody else's become user turns, which are not: the
model learns to answer as the persona and never to write the user's lines.
"""

from __future__ import annotations

from core.persona import PersonaCard
from core.prompt import Turn
from core.transcript_labels import ANONYMOUS_USERS, speaker_line


def is_transcript(text: str, persona: PersonaCard) -> bool:
    """Whether the text has a line opened by the persona or the anonymous user."""
    known = (*persona.aliases, *ANONYMOUS_USERS)
    return any((s := speaker_line(line)) and s[0] in known for line in text.replace("\r\n", "\n").split("\n"))


def split_transcript(text: str, persona: PersonaCard, default_persona: bool) -> list[Turn]:
    """Split on speaker prefixes. A line without a prefix continues the turn before it; lines
    before the first prefix belong to the persona when `default_persona` (a response) and to the
    anonymous user otherwise (a context). Empty turns are dropped."""
    turns: list[tuple[bool, str | None, list[str]]] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        found = speaker_line(line)
        if found:
            label, rest = found
            by_persona = label in persona.aliases
            speaker = None if by_persona or label in ANONYMOUS_USERS else label
            turns.append((by_persona, speaker, [rest]))
        elif turns:
            turns[-1][2].append(line)
        elif line.strip():
            turns.append((default_persona, None, [line]))
    result = []
    for by_persona, speaker, lines in turns:
        body = "\n".join(lines).strip()
        if body:
            result.append(Turn(body, by_persona=by_persona, speaker=speaker))
    return result


def record_turns(instruction: str, input: str, output: str, persona: PersonaCard) -> list[Turn]:
    """The conversation a record stands for.

    A transcript record is its split input followed by its split output; its instruction (a
    directive such as "Continue the conversation as Inosuke.") is replaced by the persona card
    in the system message. Any other record is one exchange: instruction (plus input, when
    there is one) from the user, output from the persona. Lines after the persona's last reply
    are dropped: there is nothing of the persona's to learn from them.
    """
    if is_transcript(input, persona) or is_transcript(output, persona):
        turns = split_transcript(input, persona, default_persona=False)
        turns += split_transcript(output, persona, default_persona=True)
    else:
        question = f"{instruction.strip()}\n\n{input.strip()}" if input.strip() else instruction.strip()
        turns = [Turn(question), Turn(output.strip(), by_persona=True)]
    while turns and not turns[-1].by_persona:
        turns.pop()
    return turns
