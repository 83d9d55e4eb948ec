"""Console mode: the bot's reply pipeline and database in a terminal, no Discord token needed.
History is kept in the database like a Discord channel's (channel 0), so it survives restarts;
/reset forgets the context, /quit ends."""

from __future__ import annotations

import sys

from bot.runtime import Runtime

CONSOLE_CHANNEL = 0
CONSOLE_USER = 1


async def converse(runtime: Runtime, lines: list[str] | None, user_name: str = "You") -> int:
    name = runtime.pipeline.card.aliases[-1]
    scripted = lines is not None
    if not scripted:
        print(f"Talking to {name} (adapter {runtime.adapter_version or 'none'}). /reset forgets, /quit ends.", flush=True)
    source = iter(lines) if scripted else (line for line in sys.stdin)
    for raw in source:
        line = raw.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            await runtime.history.reset(CONSOLE_CHANNEL)
            print("(context forgotten)", flush=True)
            continue
        if scripted:
            print(f"{user_name}: {line}", flush=True)
        reply = await runtime.pipeline.respond(CONSOLE_CHANNEL, CONSOLE_USER, user_name, line)
        print(f"{name}: {reply.text}", flush=True)
    return 0
