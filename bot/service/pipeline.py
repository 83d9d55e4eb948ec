"""The reply pipeline shared by Discord and the console: store the user's message, build the
context from the channel's history, generate through the engine, store the reply.

Per channel, one message is handled at a time (replies come in order and each prompt sees the
previous reply); across channels, requests meet in the engine and are batched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from core.context import fit_prompt, turns_from_history
from bot.service.engine_client import EngineUnavailable
from bot.service.worker import ModelReleased, ModelWorker, RenderedForAnotherModel, WorkerBusy
from core.generate import reply_text
from core.db.history import History
from core.persona import PersonaCard
from core.settings import ChatSettings

log = logging.getLogger(__name__)

# In-character answers for when no model reply can be given.
WAIT_YOUR_TURN = "OI! Everybody's yelling at me at once! Wait your turn, I'll get to you!"
TOO_LONG = "That's way too many words! Lord Inosuke doesn't read scrolls! Say it shorter!"
APOLOGY = "Grr... my head's all foggy. Something went wrong. Say that again!"
TRAINING_IN_THE_MOUNTAINS = "I'm training in the mountains right now! Lord Inosuke will be back stronger. Wait for me!"



@dataclass(frozen=True)
class Reply:
    text: str
    from_model: bool  # False for the in-character fallbacks above
    message_id: int | None = None  # the stored reply's database id (None for fallbacks, which are not stored)


class ChatPipeline:
    # A swap between rendering and generating hands the request back; a few re-renders always
    # find the new model in place (swaps are seconds apart at the very least).
    RENDER_ATTEMPTS = 3

    def __init__(self, history: History, worker: ModelWorker, card: PersonaCard, *, bot_user_id: int = 0,
                 settings: ChatSettings = ChatSettings()):
        self.history, self.worker, self.card = history, worker, card
        self.bot_user_id, self.settings = bot_user_id, settings
        self._channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def respond(self, channel_id: int, author_id: int, author_name: str, text: str, *,
                      discord_id: int | None = None, reply_to_discord_id: int | None = None, guild_id: int | None = None,
                      channel_name: str | None = None) -> Reply:
        async with self._channel_locks[channel_id]:
            # The user's message is stored before anything can fail: it is never lost.
            await self.history.add(channel_id, author_id, author_name, text, discord_id=discord_id,
                                   reply_to_discord_id=reply_to_discord_id, guild_id=guild_id, channel_name=channel_name)
            if len(text) > self.settings.max_input_chars:
                return Reply(TOO_LONG, from_model=False)
            messages = await self.history.recent(channel_id, self.settings.history_messages)
            turns = turns_from_history(messages)
            try:
                generation = await self.generate_for(turns)
            except WorkerBusy:
                return Reply(WAIT_YOUR_TURN, from_model=False)
            except ModelReleased:
                return Reply(TRAINING_IN_THE_MOUNTAINS, from_model=False)
            except EngineUnavailable as exc:  # down or too slow: expected in operation, one line, no traceback
                log.warning("reply failed in channel %s: %s", channel_id, exc)
                return Reply(APOLOGY, from_model=False)
            except Exception:
                log.exception("reply failed in channel %s", channel_id)
                return Reply(APOLOGY, from_model=False)
            if not generation.ended:
                log.info("reply in channel %s hit the %d-token limit", channel_id, self.worker.max_new_tokens)
            reply = reply_text(generation.text, self.card) or "..."
            stored = await self.history.add(channel_id, self.bot_user_id, self.card.aliases[-1], reply, by_bot=True,
                                            adapter_version=generation.adapter_version)  # the adapter that wrote it, even mid-swap
            return Reply(reply, from_model=True, message_id=stored)

    async def generate_for(self, turns):
        """Render the context for the model in service and generate; render again if the model
        was swapped before the prompt reached it."""
        for _ in range(self.RENDER_ATTEMPTS):
            served = self.worker.served
            if served is None:
                raise ModelReleased
            # Tokenizing the window is CPU work: keep it off the event loop too.
            prompt, _ = await asyncio.to_thread(fit_prompt, served.tokenizer, self.card, turns,
                                                   self.settings.context_tokens, served.prompt_format)
            try:
                return await self.worker.generate(prompt, served)
            except RenderedForAnotherModel:
                continue
        raise RuntimeError(f"the served model changed {self.RENDER_ATTEMPTS} times while rendering one reply")
