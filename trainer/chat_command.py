"""`python -m trainer chat --adapter PATH [--say TEXT ...]`: try an adapter.

With --say (repeatable) it plays those lines as one conversation and exits; without, it reads
lines from the terminal (/reset forgets the conversation, /quit or Ctrl-D ends). Replies are
rendered by the bot's prompt builder in the adapter's own prompt format and stop at end of turn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.paths import DEFAULT_CARD


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, type=Path, help="adapter folder (e.g. state/adapters/v0001)")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT", help="a line to say (repeatable); omit for a REPL")
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card")
    parser.add_argument("--max-new-tokens", type=int, default=128)


def run_chat(args) -> int:
    from bot.local_chat import LocalConversation

    conversation = LocalConversation(args.card, adapter=args.adapter, max_new_tokens=args.max_new_tokens)
    name = conversation.name
    if args.say:
        for line in args.say:
            reply, answer = conversation.say(line)
            stop = "end of turn" if answer.ended else f"token limit {args.max_new_tokens}"
            print(f"You: {line}\n{name}: {reply}\n  [{answer.new_tokens} tokens, stopped at {stop}]")
        return 0
    print(f"Talking to {name} ({conversation.adapter.version}, {conversation.base_model}). /reset, /quit.")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("You: "), None):
        line = line.strip()
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            conversation.turns.clear()
            print("(conversation forgotten)")
            continue
        if line:
            reply, _ = conversation.say(line)
            print(f"{name}: {reply}", flush=True)
    return 0
