"""Fixtures of the end-to-end Discord tests: the real discord.py client, unchanged, talking to
the emulator over loopback, in front of the real reply pipeline and worker and a real database
migrated by Alembic (a SQLite file, or PostgreSQL for tests marked each_database). The language model is the fake one (fake_served) unless a test's assertions
depend on what the model writes; then it passes the real one (served)."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord_front.client import make_client
from bot.service.pipeline import ChatPipeline
from bot.service.runtime import Runtime
from bot.service.worker import ModelWorker
from core.db.database import make_engine, sessions
from core.db.history import History
from core.decoding import Decoding
from core.settings import ChatSettings, DiscordSettings
from tests.discord_front.emulator import CHANNELS, ENABLED, MEMBERS, OTHER_BOT, Emulator

DEFAULT_SETTINGS = DiscordSettings(enabled_channels=[ENABLED], bot_allowlist=[OTHER_BOT])


@pytest.fixture(autouse=True)
def own_state_folder(tmp_path, monkeypatch):
    """The bot's state folder (staged training files that /forget-me cleans) is the test's own."""
    monkeypatch.setenv("INOSUKE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def make_runtime(db_url, persona):
    """make_runtime(served) -> a Runtime on the test's database; `runtime.prompts` records every
    prompt sent to the worker, in order."""

    def make(served, max_new_tokens: int = 32, chat: ChatSettings = ChatSettings(), max_batch: int = 8,
             decoding: Decoding = Decoding()) -> Runtime:
        db = make_engine(db_url)
        history = History(sessions(db))
        worker = ModelWorker(served, max_new_tokens=max_new_tokens, max_batch=max_batch, decoding=decoding).start()
        runtime = Runtime(ChatPipeline(history, worker, persona, settings=chat), worker, history, db)
        runtime.prompts = []
        generate = worker.generate

        async def recording(prompt, rendered_for, prefix=None, **options):
            runtime.prompts.append(prompt)
            return await generate(prompt, rendered_for, prefix, **options)

        worker.generate = recording
        return runtime

    return make


@pytest.fixture
def run_bot(monkeypatch):
    """run_bot(runtime, body, settings, prepare, **world) runs `body(emulator, client)` with the
    bot connected (sharded when settings.shard_count is set), then closes everything; returns the
    emulator for inspection. `world` replaces the emulator's defaults (channels, users, guilds,
    channel_guilds, recommended_shards); `prepare(emulator)` sets up the world (permission
    overwrites, ...) before the bot connects."""

    def run(runtime: Runtime, body, settings: DiscordSettings = DEFAULT_SETTINGS, prepare=None, **world) -> Emulator:
        emulator = None

        async def main():
            nonlocal emulator
            emulator = await Emulator(**({"channels": dict(CHANNELS), "users": dict(MEMBERS)} | world)).start()
            if prepare is not None:
                prepare(emulator)
            emulator.patch_discord(monkeypatch)
            # The emulator sends every GUILD_CREATE right after READY: no need for discord.py's 2 s
            # wait for late guilds before on_ready.
            client = make_client(runtime, settings, guild_ready_timeout=0.05)
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

    return run
