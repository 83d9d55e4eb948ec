"""Console mode: the bot's reply pipeline and database in a terminal, no Discord token needed.
History is kept in the database like a Discord channel's (channel 0), so it survives restarts;
/reset forgets the context, /quit or Ctrl-D ends."""

from __future__ import annotations

from bot.service.runtime import Runtime
from core.conversation import repl, terminal_lines

CONSOLE_CHANNEL = 0
CONSOLE_USER = 1


async def converse(runtime: Runtime, lines: list[str] | None, user_name: str = "You") -> int:
    name = runtime.pipeline.card.aliases[-1]
    scripted = lines is not None
    if not scripted:
        print(f"Talking to {name} (adapter {runtime.adapter_version or 'none'}). /reset forgets, /quit ends.", flush=True)

    async def say(line: str) -> str:
        return (await runtime.pipeline.respond(CONSOLE_CHANNEL, CONSOLE_USER, user_name, line)).text

    await repl(lines if scripted else terminal_lines(), say, lambda: runtime.history.reset(CONSOLE_CHANNEL), name,
               echo_user=user_name if scripted else None)
    return 0
