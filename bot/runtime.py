"""Everything a running bot holds, assembled once: database (migrated to head), model with its
adapter, the engine's worker thread, and the reply pipeline. Console and Discord share it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.chat import ChatPipeline, ChatSettings
from bot.engine import ReplyEngine
from bot.history import History

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    pipeline: ChatPipeline
    engine: ReplyEngine
    history: History
    db_engine: object
    adapter_version: str | None

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.stop)
        await self.db_engine.dispose()


async def start_runtime(*, model: str, adapter: Path | None, quantization: str = "nf4", card_path: Path,
                        database_url: str | None = None, settings: ChatSettings = ChatSettings(),
                        max_batch: int = 8, max_wait_s: float = 0.05, max_queue: int = 32,
                        max_new_tokens: int = 160, bot_user_id: int = 0) -> Runtime:
    from bot.adapters import load_adapted_model, read_adapter
    from bot.db.database import make_engine, sessions, upgrade
    from bot.model_resolver import load_model, load_tokenizer
    from bot.persona import load_card

    await asyncio.to_thread(upgrade, database_url)  # Alembic owns the schema: apply pending migrations
    db_engine = make_engine(database_url)
    history = History(sessions(db_engine))
    card = load_card(card_path)
    if adapter is not None:
        info = read_adapter(adapter)
        tokenizer = await asyncio.to_thread(load_tokenizer, info.base_model)
        language_model = await asyncio.to_thread(load_adapted_model, info, quantization)
        version, prompt_format = info.version, info.prompt_format
    else:
        tokenizer = await asyncio.to_thread(load_tokenizer, model)
        language_model = await asyncio.to_thread(load_model, model, quantization)
        version, prompt_format = None, "chat"
    engine = ReplyEngine(language_model, tokenizer, max_batch=max_batch, max_wait_s=max_wait_s,
                         max_queue=max_queue, max_new_tokens=max_new_tokens).start()
    pipeline = ChatPipeline(history, engine, tokenizer, card, prompt_format=prompt_format,
                            adapter_version=version, bot_user_id=bot_user_id, settings=settings)
    log.info("serving %s with adapter %s", model if adapter is None else info.base_model, version or "none (base model)")
    return Runtime(pipeline, engine, history, db_engine, version)
