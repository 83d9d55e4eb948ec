"""What the end-to-end Discord tests share: the real reply pipeline on the embedded model and a
real migrated SQLite file, and a runner that starts the real discord.py client against the
emulator and closes everything after the test's body."""

from __future__ import annotations

import asyncio
import sqlite3

from bot.chat import ChatPipeline
from bot.db.database import make_engine, sessions
from bot.discord_bot import DiscordSettings, InosukeBot
from bot.engine import ReplyEngine
from bot.history import History
from bot.runtime import Runtime
from tests.discord_emulation.emulator import Emulator

GENERAL, TRAINING, ENABLED = 101, 102, 103
TANJIRO, ZENITSU, OTHER_BOT = 201, 202, 299


def make_runtime(model, tokenizer, persona, db_path) -> Runtime:
    db = make_engine(f"sqlite+aiosqlite:///{db_path}")
    history = History(sessions(db))
    engine = ReplyEngine(model, tokenizer, max_new_tokens=32, version="v0007").start()
    pipeline = ChatPipeline(history, engine, tokenizer, persona)
    runtime = Runtime(pipeline, engine, history, db)
    runtime.prompts = []
    generate = engine.generate

    async def recording(prompt):
        runtime.prompts.append(prompt)
        return await generate(prompt)

    engine.generate = recording
    return runtime


def run_bot(monkeypatch, runtime, body, settings=DiscordSettings(enabled_channels=[ENABLED], bot_allowlist=[OTHER_BOT])):
    """Run `body(emulator, client)` with the bot connected; returns the emulator for inspection."""
    emulator = None

    async def main():
        nonlocal emulator
        emulator = await Emulator(channels={GENERAL: "general", TRAINING: "training", ENABLED: "inosuke-chat"},
                                  users={TANJIRO: "Tanjiro", ZENITSU: "Zenitsu"}).start()
        emulator.patch_discord(monkeypatch)
        client = InosukeBot(runtime, settings)
        task = asyncio.create_task(client.start("emulated-token"))
        try:
            ready = asyncio.create_task(client.wait_until_ready())
            await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if task.done():  # the client stopped before it was ready: show why
                task.result()
                raise RuntimeError("the client stopped before it was ready")
            assert ready.done(), "the client did not get ready in 30 s"
            await body(emulator, client)
        finally:
            await client.close()
            await asyncio.gather(task, return_exceptions=True)
            await runtime.close()
            await emulator.stop()

    asyncio.run(main())
    return emulator


def rows(db_path, sql):
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()

