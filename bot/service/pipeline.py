"""The reply pipeline shared by Discord and the console: store the user's message, build the
context from the channel's history, generate through the engine, store and deliver the reply.

Per channel, one message is handled at a time (replies come in order and each prompt sees the
previous reply); across channels, requests meet in the engine and are batched. A channel with
`max_channel_queue` messages already handled or waiting gets an in-character "wait your turn",
like a full engine queue, and a request waits for the model `reply_timeout_s` at most.

Nothing is lost and nothing is invented: the user's message is stored before anything else can
fail (a storage error is logged and answered with an apology); a reply is stored unsent, posted
through `deliver`, and only then marked sent, so a reply that was never posted never enters the
context, the ratings or the training data. A message edited or deleted on Discord while it waits
for its channel's turn is stored as it reads now, or not at all (`edited_while_waiting`,
`deleted_while_waiting`): the history only holds what was stored. At shutdown `stop_generating()` answers every request
still waiting for the model with an in-character good night instead of leaving it unanswered.

Swipes (`swipe`): another reply to the exact context of the newest reply, through the same
renderer and worker, sampled with a seed derived from the reply and the alternative's number;
stored as an alternative (core/db/swipes.py) and shown in the reply's place. A new message in
the channel keeps the alternative shown (a preference pick for the trainer).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.context import fit_prompt, turns_from_history
from bot.service.engine_client import EngineUnavailable
from bot.service.worker import ModelReleased, ModelWorker, RenderedForAnotherModel, WorkerBusy
from core.generate import reply_text
from core.db.history import AlreadyStored, History
from core.db.swipes import Shown, Swipes
from core.persona import PersonaCard
from core.prompt import card_prefix
from core.settings import ChatSettings

log = logging.getLogger(__name__)

# In-character answers for when no model reply can be given.
WAIT_YOUR_TURN = "OI! Everybody's yelling at me at once! Wait your turn, I'll get to you!"
TOO_LONG = "That's way too many words! Lord Inosuke doesn't read scrolls! Say it shorter!"
APOLOGY = "Grr... my head's all foggy. Something went wrong. Say that again!"
TOO_SLOW = "Grr... I thought so hard my head's steaming and I lost it! Say that again!"
GOING_TO_SLEEP = "Lord Inosuke is going to sleep now! Ask me again when I'm back, and I'll crush it!"
TRAINING_IN_THE_MOUNTAINS = "I'm training in the mountains right now! Lord Inosuke will be back stronger. Wait for me!"

# deliver(text, reply_id) posts a reply (reply_id: its stored id, for rating buttons; None for
# the fallbacks above, which are not stored) and returns the Discord id of what was posted, or
# None when nothing could be posted.
Deliver = Callable[[str, "int | None"], Awaitable["int | None"]]


# Why a 🔄 gives no new alternative (told to the clicker only).
SWIPE_NOT_NEWEST = "Only my newest reply can be swiped: the conversation already went on after this one."
SWIPE_GONE = "That reply can't be swiped any more (the message it answered is gone)."
SWIPE_GREEDY = "Swipes need sampled replies: this bot always gives the same one (decoding.temperature is 0)."


class SwipeRefused(Exception):
    """No alternative: the message says why, in one line."""


def swipe_seed(reply_id: int, position: int) -> int:
    """The seed alternative `position` of reply `reply_id` is sampled with: fixed by the two, so
    the same swipe gives the same alternative (tests, reruns), and different for every swipe."""
    digest = hashlib.sha256(f"swipe\x00{reply_id}\x00{position}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Reply:
    text: str
    from_model: bool  # False for the in-character fallbacks above
    message_id: int | None = None  # the stored reply's database id (None for fallbacks, which are not stored, and unsent replies)


DELETED = object()  # store_as_it_reads: the message was deleted on Discord before it was stored


@dataclass
class _Waiting:
    """A Discord message waiting for its channel's turn, not stored yet: an edit or a delete that
    arrives meanwhile is applied here, since there is no stored row to apply it to."""

    text: str
    deleted: bool = False
    storing: bool = False
    stored: asyncio.Event = field(default_factory=asyncio.Event)  # set once the store it began (storing) has ended


class ChatPipeline:
    # A swap between rendering and generating hands the request back; a few re-renders always
    # find the new model in place (swaps are seconds apart at the very least).
    RENDER_ATTEMPTS = 3

    def __init__(self, history: History, worker: ModelWorker, card: PersonaCard, *, bot_user_id: int = 0,
                 settings: ChatSettings = ChatSettings()):
        self.history, self.worker, self.card = history, worker, card
        self.bot_user_id, self.settings = bot_user_id, settings
        self._channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._channel_load: defaultdict[int, int] = defaultdict(int)  # messages handled or waiting, per channel
        self._generating: set[asyncio.Task] = set()
        self._posting: dict[int, asyncio.Event] = {}  # channel -> set once the reply being posted there is recorded
        self._waiting: dict[int, _Waiting] = {}  # Discord id -> a message waiting for its channel's turn
        self.stopping = False

    @property
    def swipes(self) -> Swipes:
        return Swipes(self.history.sessions)

    def stop_generating(self) -> None:
        """Shutdown: requests waiting for the model, and those still queued behind them, are
        answered with GOING_TO_SLEEP instead of a reply."""
        self.stopping = True
        for task in list(self._generating):
            task.cancel()

    async def respond(self, channel_id: int, author_id: int, author_name: str, text: str, *,
                      discord_id: int | None = None, reply_to_discord_id: int | None = None, guild_id: int | None = None,
                      channel_name: str | None = None, deliver: Deliver | None = None) -> Reply:
        """Answer one message. With `deliver` (Discord) the reply is posted through it before
        it counts as sent; without (the console) the caller shows `Reply.text` itself."""
        stored = dict(discord_id=discord_id, reply_to_discord_id=reply_to_discord_id, guild_id=guild_id, channel_name=channel_name)
        waiting = self._waiting.setdefault(discord_id, _Waiting(text)) if discord_id is not None else None
        try:
            if self._channel_load[channel_id] >= self.settings.max_channel_queue:
                message_id, _ = await self.store_as_it_reads(channel_id, author_id, author_name, text, stored, waiting)
                if message_id is DELETED:
                    return Reply("", from_model=False)
                return await self.fallback(WAIT_YOUR_TURN, deliver)  # kept even so
            self._channel_load[channel_id] += 1
            try:
                async with self._channel_locks[channel_id]:
                    return await self.answer(channel_id, author_id, author_name, text, stored, deliver, waiting)
            finally:
                self._channel_load[channel_id] -= 1
        finally:
            if waiting is not None:
                self._waiting.pop(discord_id, None)

    async def store_as_it_reads(self, channel_id, author_id, author_name, text, stored: dict,
                                waiting: _Waiting | None) -> tuple[int | None | object, str]:
        """Store the user's message as it reads now, edited on Discord or not, with the text
        stored; (DELETED, text) when it was deleted before its turn came."""
        if waiting is not None:
            if waiting.deleted:
                return DELETED, text
            text, waiting.storing = waiting.text, True
        try:
            return await self.store_message(channel_id, author_id, author_name, text, **stored), text
        finally:
            if waiting is not None:  # from now on edits and deletes reach the stored row
                waiting.stored.set()

    async def answer(self, channel_id, author_id, author_name, text, stored: dict, deliver: Deliver | None,
                     waiting: _Waiting | None = None) -> Reply:
        # The user's message is stored before anything can fail: it is never lost.
        message_id, text = await self.store_as_it_reads(channel_id, author_id, author_name, text, stored, waiting)
        if message_id is DELETED:  # on Discord, while it waited for its turn: nothing to answer
            return Reply("", from_model=False)
        if message_id is None:
            return await self.fallback(APOLOGY, deliver)
        if self.stopping:
            return await self.fallback(GOING_TO_SLEEP, deliver)
        if self.too_long(text):
            return await self.fallback(TOO_LONG, deliver)
        messages = await self.history.context(channel_id, message_id, self.settings.history_messages)
        if not messages:  # deleted while it waited: nothing left to answer
            return Reply("", from_model=False)
        turns = turns_from_history(messages)
        task = await self.generate_bounded(turns)
        if task is None:
            log.warning("reply in channel %s waited more than %.0f s for the model", channel_id, self.settings.reply_timeout_s)
            return await self.fallback(TOO_SLOW, deliver)
        if task.cancelled():
            return await self.fallback(GOING_TO_SLEEP, deliver)
        try:
            generation = task.result()
        except WorkerBusy:
            return await self.fallback(WAIT_YOUR_TURN, deliver)
        except ModelReleased:
            return await self.fallback(TRAINING_IN_THE_MOUNTAINS, deliver)
        except EngineUnavailable as exc:  # down or too slow: expected in operation, one line, no traceback
            log.warning("reply failed in channel %s: %s", channel_id, exc)
            return await self.fallback(APOLOGY, deliver)
        except Exception:
            log.exception("reply failed in channel %s", channel_id)
            return await self.fallback(APOLOGY, deliver)
        if not generation.ended:
            log.info("reply in channel %s hit the %d-token limit", channel_id, self.worker.max_new_tokens)
        reply = reply_text(generation.text, self.card) or "..."
        try:  # the adapter that wrote it, even mid-swap; unsent until posted
            reply_id = await self.history.add(channel_id, self.bot_user_id, self.card.aliases[-1], reply, by_bot=True,
                                              adapter_version=generation.adapter_version, answers_id=message_id,
                                              sent=deliver is None)
        except Exception:
            log.exception("could not store a reply in channel %s; it is sent without rating buttons", channel_id)
            await self.fallback(reply, deliver)
            return Reply(reply, from_model=True)
        if deliver is None:
            return Reply(reply, from_model=True, message_id=reply_id)
        return Reply(reply, from_model=True, message_id=await self.deliver_stored(channel_id, reply, reply_id, deliver))

    def expect(self, discord_id: int, text: str) -> None:
        """A Discord message about to be handed to respond(): registered now, before the caller's
        first await (discord.py's typing indicator waits for Discord), so an edit or a delete that
        arrives meanwhile reaches it. respond() takes the entry over; unexpect() drops one that
        never got there."""
        self._waiting.setdefault(discord_id, _Waiting(text))

    def unexpect(self, discord_id: int) -> None:
        waiting = self._waiting.get(discord_id)
        if waiting is not None and not waiting.storing:
            self._waiting.pop(discord_id, None)

    async def edited_while_waiting(self, discord_id: int, text: str) -> bool:
        """A Discord message was edited. True when it was still waiting for its turn: it will be
        stored and answered as it reads now. False: apply the edit to the stored history (when
        the edit came while the message was being stored, once it is stored)."""
        waiting = self._waiting.get(discord_id)
        if waiting is None:
            return False
        if waiting.storing:
            await waiting.stored.wait()
            return False
        waiting.text = text
        waiting.deleted = not text.strip()  # nothing left to answer (an attachment alone)
        return True

    async def deleted_while_waiting(self, discord_ids: list[int]) -> None:
        """Discord messages were deleted: those still waiting for their turn are never stored
        nor answered; for those being stored, this returns once they are (delete them then)."""
        for discord_id in discord_ids:
            waiting = self._waiting.get(discord_id)
            if waiting is None:
                continue
            if waiting.storing:
                await waiting.stored.wait()
            else:
                waiting.deleted = True

    async def swipe_generates(self, reply_id: int) -> bool:
        """Whether a swipe of this reply would write a new alternative (the model runs), not show
        the next one already written: what counts towards a user's rate limit."""
        return await self.alternatives_written(reply_id) < self.settings.swipe_alternatives

    async def alternatives_written(self, reply_id: int) -> int:
        """How many texts the reply has had: its alternatives, or 1 (itself) when never swiped."""
        return len(await self.swipes.alternatives(reply_id)) or 1

    async def swipe(self, channel_id: int, reply_id: int, max_length: int) -> Shown:
        """Another reply to the exact context reply `reply_id` answered, shown in its place (at
        most `max_length` characters); once the reply has chat.swipe_alternatives of them, the
        next one already stored is shown instead. Raises SwipeRefused with the reason."""
        if not getattr(self.worker, "decoding", None) or not self.worker.decoding.sampling:
            raise SwipeRefused(SWIPE_GREEDY)
        if self.stopping:
            raise SwipeRefused(GOING_TO_SLEEP)
        async with self._channel_locks[channel_id]:  # in turn with the channel's replies
            if not await self.swipes.is_newest(reply_id, channel_id):
                raise SwipeRefused(SWIPE_NOT_NEWEST)
            count = await self.alternatives_written(reply_id)
            if count >= self.settings.swipe_alternatives:
                shown = await self.swipes.show_next(reply_id)
                if shown is None:
                    raise SwipeRefused(SWIPE_GONE)
                return shown
            answers_id = await self.swipes.answered(reply_id)
            messages = await self.history.context(channel_id, answers_id, self.settings.history_messages) if answers_id else []
            if not messages:
                raise SwipeRefused(SWIPE_GONE)
            seed = swipe_seed(reply_id, count)
            task = await self.generate_bounded(turns_from_history(messages), seed)
            if task is None:
                raise SwipeRefused(TOO_SLOW)
            if task.cancelled():
                raise SwipeRefused(GOING_TO_SLEEP)
            try:
                generation = task.result()
            except WorkerBusy:
                raise SwipeRefused(WAIT_YOUR_TURN) from None
            except ModelReleased:
                raise SwipeRefused(TRAINING_IN_THE_MOUNTAINS) from None
            except EngineUnavailable as exc:
                log.warning("swipe failed in channel %s: %s", channel_id, exc)
                raise SwipeRefused(APOLOGY) from None
            except Exception:
                log.exception("swipe failed in channel %s", channel_id)
                raise SwipeRefused(APOLOGY) from None
            text = (reply_text(generation.text, self.card) or "...")[:max_length]
            try:
                return await self.swipes.add(reply_id, text, seed=seed, adapter_version=generation.adapter_version)
            except LookupError:  # deleted while it was generated
                raise SwipeRefused(SWIPE_GONE) from None

    async def deliver_stored(self, channel_id: int, reply: str, reply_id: int, deliver: Deliver) -> int | None:
        """Post a stored reply; it counts (sent) once posted and is discarded if it never was."""
        posted, recorded = None, self._posting.setdefault(channel_id, asyncio.Event())
        recorded.clear()
        try:
            posted = await deliver(reply, reply_id)
        finally:  # a cancelled or failed delivery leaves no reply behind that nobody saw
            try:
                if posted is None:
                    await self.history.discard(reply_id)
                else:
                    await self.history.mark_sent(reply_id, posted)
            except Exception:
                log.exception("could not record the delivery of reply %s (it stays out of context and training)", reply_id)
            finally:
                recorded.set()
        return reply_id if posted is not None else None

    async def posted(self, channel_id: int, timeout: float = 2.0) -> None:
        """Wait (briefly) until a reply being posted in the channel is recorded: /rate the moment
        a reply appears rates that reply, not the one before."""
        event = self._posting.get(channel_id)
        if event is not None and not event.is_set():
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass

    async def store_message(self, channel_id: int, author_id: int, author_name: str, text: str, **stored) -> int | None:
        try:
            message_id = await self.history.add(channel_id, author_id, author_name, text, **stored)
        except AlreadyStored:
            raise  # answered once already (a replayed event, another process): no second answer
        except Exception:
            log.exception("could not store a message in channel %s", channel_id)
            return None
        try:  # the conversation went on: a swiped reply before it keeps the alternative it shows
            await self.swipes.kept(channel_id, message_id, author_id)
        except Exception:
            log.exception("could not record the kept alternative in channel %s", channel_id)
        return message_id

    async def fallback(self, text: str, deliver: Deliver | None) -> Reply:
        if deliver is not None:
            try:
                await deliver(text, None)
            except Exception:
                log.exception("could not post an answer")
        return Reply(text, from_model=False)

    def too_long(self, text: str) -> bool:
        """Longer than the input limit: in characters (cheap, first) or in the served model's
        tokens (what costs model time: 1,500 CJK characters or emoji are thousands of tokens)."""
        if len(text) > self.settings.max_input_chars:
            return True
        served = self.worker.served
        return served is not None and len(served.tokenizer(text, add_special_tokens=False)["input_ids"]) > self.settings.max_input_tokens

    def _render(self, served, turns):
        """The prompt and the card prefix it begins with (whose keys and values the worker keeps)."""
        prompt = fit_prompt(served.tokenizer, self.card, turns, self.settings.context_tokens, served.prompt_format)
        return prompt, card_prefix(served.tokenizer, self.card, served.prompt_format)

    async def generate_bounded(self, turns, seed: int | None = None) -> asyncio.Task | None:
        """A reply's or a swipe's generation, bounded by reply_timeout_s and cancelled by
        stop_generating(): the finished (or cancelled) task, or None when it timed out."""
        task = asyncio.ensure_future(self.generate_for(turns, seed))
        self._generating.add(task)
        try:
            await asyncio.wait({task}, timeout=self.settings.reply_timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            self._generating.discard(task)
        if not task.done():
            task.cancel()
            return None
        return task

    async def generate_for(self, turns, seed: int | None = None):
        """Render the context for the model in service and generate (with `seed`: a swipe's);
        render again if the model was swapped before the prompt reached it."""
        options = {"seed": seed} if seed is not None else {}
        for _ in range(self.RENDER_ATTEMPTS):
            served = self.worker.served
            if served is None:
                raise ModelReleased
            # Tokenizing the window is CPU work: keep it off the event loop too.
            (prompt, _), prefix = await asyncio.to_thread(self._render, served, turns)
            try:
                return await self.worker.generate(prompt, served, prefix, **options)
            except RenderedForAnotherModel:
                continue
        raise RuntimeError(f"the served model changed {self.RENDER_ATTEMPTS} times while rendering one reply")
