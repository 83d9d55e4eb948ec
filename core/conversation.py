"""A conversation with a model in this process, without database or worker (what
`python -m bot --ask` and `python -m trainer chat` use to try a model or an adapter), and the
one terminal loop that both consoles (`python -m bot --console`, `python -m trainer chat`) run:
/reset forgets, /quit, /exit or Ctrl-D ends."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from core.decoding import Decoding
from core.generate import Generation
from core.served_model import ServedModel

QUIT = ("/quit", "/exit")
RESET = "/reset"


class LocalConversation:
    def __init__(self, card_path: Path, served: ServedModel, decoding: Decoding):
        from core.persona import load_card

        self.card = load_card(card_path)
        self.served = served
        self.decoding = decoding  # the bot's (config/bot.yaml decoding:), as the local backend applies it
        self.turns = []

    @property
    def name(self) -> str:
        return self.card.aliases[-1]

    def say(self, text: str) -> tuple[str, Generation]:
        """The persona's reply to `text`, given everything said so far."""
        from core.generate import generate, reply_text
        from core.prompt import Turn, generation_prompt

        served = self.served
        self.turns.append(Turn(text))
        prompt = generation_prompt(served.tokenizer, self.card, self.turns, served.prompt_format)
        [answer] = generate(served.model, served.tokenizer, [prompt], decoding=self.decoding)
        reply = reply_text(answer.text, self.card)
        self.turns.append(Turn(reply, by_persona=True))
        return reply, answer


def transcript_turn(name: str, text: str) -> str:
    """`name: text` for a console transcript, continuation lines indented under the text: a reply
    that spans lines (or contains "You: ...") stays visibly under its speaker, and every turn,
    and only a turn, starts at the margin."""
    indent = "\n" + " " * (len(name) + 2)
    return f"{name}: " + indent.join(text.splitlines() or [""])


def terminal_lines(prompt: str = "You: ") -> Iterable[str]:
    """Lines typed at the terminal (with a prompt), or piped in; ends at Ctrl-D / end of input."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return


async def repl(lines: Iterable[str], say: Callable[[str], Awaitable[str]], reset: Callable[[], Awaitable[None]],
               name: str, echo_user: str | None = None) -> None:
    """Answer each line with `say`; /reset calls `reset`; /quit, /exit or the end of `lines` ends.
    `echo_user` prints the user's own line first (for scripted conversations)."""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line in QUIT:
            break
        if line == RESET:
            await reset()
            print("(conversation forgotten)", flush=True)
            continue
        if echo_user:
            print(transcript_turn(echo_user, line), flush=True)
        print(transcript_turn(name, await say(line)), flush=True)
