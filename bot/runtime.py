"""Everything a running bot holds, assembled once: database (migrated to head), model with its
adapter, the engine's worker thread, and the reply pipeline. Console and Discord share it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from bot.chat import ChatPipeline
from bot.engine import ReplyEngine
from bot.history import History
from bot.paths import project_path
from bot.ratings import Ratings

if TYPE_CHECKING:
    from bot.settings import BotSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    pipeline: ChatPipeline
    engine: ReplyEngine
    history: History
    db_engine: object
    base_model: str | None = None  # what the model was loaded from (for hot swaps)
    quantization: str = "nf4"
    started_at: float = field(default_factory=time.monotonic)  # for /inosuke's uptime

    @property
    def ratings(self) -> Ratings:
        return Ratings(self.history.sessions)

    @property
    def adapter_version(self) -> str | None:
        return self.engine.version

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.stop)
        await self.db_engine.dispose()


async def start_runtime(settings: BotSettings, adapter: Path | None, database_url: str | None = None) -> Runtime:
    """Migrate the database, load the model (with `adapter`, or the bare settings.model), start
    the worker. Model loading runs in threads so an already running event loop stays live."""
    from bot.adapters import load_adapted_model, read_adapter
    from bot.db.database import make_engine, sessions, upgrade
    from bot.model_resolver import load_model, load_tokenizer
    from bot.persona import load_card

    await asyncio.to_thread(upgrade, database_url)  # Alembic owns the schema: apply pending migrations
    db_engine = make_engine(database_url)
    history = History(sessions(db_engine))
    card = load_card(project_path(settings.card))
    if adapter is not None:
        info = read_adapter(adapter)
        base = info.base_model
        tokenizer = await asyncio.to_thread(load_tokenizer, base)
        language_model = await asyncio.to_thread(load_adapted_model, info, settings.quantization)
        version, prompt_format = info.version, info.prompt_format
    else:
        base = settings.model
        tokenizer = await asyncio.to_thread(load_tokenizer, base)
        language_model = await asyncio.to_thread(load_model, base, settings.quantization)
        version, prompt_format = None, "chat"
    e = settings.engine
    engine = ReplyEngine(language_model, tokenizer, max_batch=e.max_batch, max_wait_s=e.max_wait_s,
                         max_queue=e.max_queue, max_new_tokens=e.max_new_tokens, version=version).start()
    pipeline = ChatPipeline(history, engine, tokenizer, card, prompt_format=prompt_format, settings=settings.chat)
    log.info("serving %s with adapter %s", base, version or "none (base model)")
    return Runtime(pipeline, engine, history, db_engine, base, settings.quantization)
