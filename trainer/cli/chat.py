"""python -m trainer chat --adapter PATH [--say TEXT ...]: try an adapter.

With --say (repeatable) it plays those lines as one conversation and exits; without, it reads
lines from the terminal (/reset forgets the conversation, /quit or Ctrl-D ends). Replies are
rendered by the one prompt builder in the adapter's own prompt format and stop at end of turn;
tokens are chosen with the bot's decoding (config/bot.yaml `decoding:`, or --config), so a try
reads as users will see it.
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
from pathlib import Path

from core.paths import DEFAULT_CARD


def add_parser(commands) -> None:
    parser = commands.add_parser("chat", help="talk to an adapter")
    parser.add_argument("--adapter", required=True, help="adapter folder, registry version (v0003) or latest")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT", help="a line to say (repeatable); omit for a REPL")
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card")
    parser.add_argument("--config", type=Path, default=None, help="bot settings whose decoding: is used (default config/bot.yaml)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="longest reply (default: decoding.max_new_tokens)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.conversation import LocalConversation, repl, transcript_turn, terminal_lines
    from core.registry import find_adapter
    from core.served_model import load_served

    from core.errors import UserError
    from core.settings import load_settings

    decoding = load_settings(args.config).decoding
    if args.max_new_tokens is not None:
        try:
            decoding = dataclasses.replace(decoding, max_new_tokens=args.max_new_tokens)
        except ValueError as exc:
            raise UserError(f"--max-new-tokens: {str(exc).partition(': ')[2]}") from None
    conversation = LocalConversation(args.card, load_served(find_adapter(args.adapter)), decoding)
    name = conversation.name
    if args.say:
        for line in args.say:
            reply, answer = conversation.say(line)
            stop = "end of turn" if answer.ended else f"token limit {decoding.max_new_tokens}"
            print(transcript_turn("You", line), transcript_turn(name, reply),
                  f"  [{answer.new_tokens} tokens, stopped at {stop}]", sep="\n")
        return 0
    print(f"Talking to {name} ({conversation.served.version}, {conversation.served.base}). /reset, /quit.")

    async def say(line: str) -> str:
        return conversation.say(line)[0]

    async def reset() -> None:
        conversation.turns.clear()

    asyncio.run(repl(terminal_lines(), say, reset, name))
    return 0
