"""Everything a running bot holds, assembled once: database (migrated to head), the served model,
the worker's thread, and the reply pipeline. Console and Discord share it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.service.pipeline import ChatPipeline
from bot.service.worker import ModelWorker
from core.db.history import History
from core.db.privacy import Privacy
from core.db.ratings import Ratings
from core.paths import project_path
from core.settings import BotSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    pipeline: ChatPipeline
    worker: ModelWorker  # or an OpenAIEngine (bot/service/engine_client.py) or LlamaServerEngine: the same interface
    history: History
    db_engine: object
    started_at: float = field(default_factory=time.monotonic)  # for /inosuke's uptime

    @property
    def ratings(self) -> Ratings:
        return Ratings(self.history.sessions)

    @property
    def privacy(self) -> Privacy:
        return Privacy(self.history.sessions, self.pipeline.settings.history_messages)

    @property
    def adapter_version(self) -> str | None:
        return self.worker.version

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    async def close(self) -> None:
        await self.worker.close()
        await self.db_engine.dispose()


async def start_runtime(settings: BotSettings, adapter: Path | None, database_url: str | None = None) -> Runtime:
    """Migrate the database, load the model (with `adapter`, or the bare settings.model), start
    the worker. Model loading runs in a thread so an already running event loop stays live."""
    from core.db.database import make_engine, sessions, upgrade
    from core.passing_thread import in_passing_thread
    from core.persona import load_card
    from core.served_model import load_served

    await asyncio.to_thread(upgrade, database_url)  # Alembic owns the schema: apply pending migrations
    db_engine = make_engine(database_url)
    history = History(sessions(db_engine))
    card = load_card(project_path(settings.card))
    e, decoding = settings.engine, settings.served_decoding
    if decoding != settings.decoding:
        log.warning("decoding.repetition_scope: reply is the local backend's; %s counts the whole context for the "
                    "repetition penalty, so replies (and the gate) use context (set decoding.repetition_scope: context to "
                    "silence this)", settings.backend)
    if settings.backend == "openai":
        from bot.service.engine_client import OpenAIEngine, remote_served

        served = await asyncio.to_thread(remote_served, adapter, settings.model)  # the tokenizer only: no weights here
        worker = OpenAIEngine(settings.openai, served, decoding=decoding, max_queue=e.max_queue)
    elif settings.backend == "llama-server":
        from bot.service.engine_client import remote_served
        from bot.service.llama_server_engine import LlamaServerEngine

        served = await asyncio.to_thread(remote_served, adapter, settings.model)  # the tokenizer only: no weights here
        worker = LlamaServerEngine(settings.llama_server, served, decoding=decoding, max_queue=e.max_queue)
        await asyncio.to_thread(worker.start)  # the process for the adapter in service, healthy
    else:
        # A passing thread, not asyncio's executor: a thread that lives on after running torch slows
        # the worker's decoding (core/passing_thread.py).
        served = await in_passing_thread(load_served, adapter, base=settings.model, quantization=settings.quantization)
        worker = ModelWorker(served, max_batch=e.max_batch, max_wait_s=e.max_wait_s, max_queue=e.max_queue,
                             decoding=decoding, history_cache_tokens=e.history_cache_tokens).start()
    pipeline = ChatPipeline(history, worker, card, settings=settings.chat)
    log.info("serving %s with adapter %s through the %s", served.base, served.version or "none (base model)", worker.describe())
    return Runtime(pipeline, worker, history, db_engine)
