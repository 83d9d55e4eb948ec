"""Swipes (🔄): the alternatives generated for one reply, which one is shown, and which one people
picked. The reply's own row (messages.content) always holds the alternative shown, so context,
history and ratings read the shown text unchanged; position 0 is the reply as first written.

Picking makes the preference pairs the trainer's DPO stage learns from (trainer/chat_logs.py):
👍 on a message showing alternative k, or the conversation going on while k is shown, marks k
chosen and every other alternative of that reply rejected; 👎 marks the shown one rejected.
Changing what is shown withdraws the reply's ratings and approval: they endorsed another text
(the 👍 that picked it stays as the pick)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import retry_when_locked
from core.db.history import now, storable
from core.db.schema import Approval, Message, Rating, ReplyAlternative


@dataclass(frozen=True)
class Alternative:
    position: int
    content: str
    seed: int | None
    adapter_version: str | None
    shown: bool
    chosen: bool | None  # True picked, False rejected, None undecided


@dataclass(frozen=True)
class Shown:
    """What a reply's message shows after a swipe: alternative `position` (0-based) of `count`."""

    content: str
    position: int
    count: int


class Swipes:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def alternatives(self, reply_id: int) -> list[Alternative]:
        """The reply's alternatives in order (empty: never swiped)."""
        async with self.sessions() as session:
            rows = (await session.scalars(select(ReplyAlternative).where(ReplyAlternative.reply_id == reply_id)
                                          .order_by(ReplyAlternative.position))).all()
        return [Alternative(r.position, r.content, r.seed, r.adapter_version, r.shown, r.chosen) for r in rows]

    async def answered(self, reply_id: int) -> int | None:
        """The message the reply answered (None: gone, or not a reply): its context is the swipe's."""
        async with self.sessions() as session:
            return await session.scalar(select(Message.answers_id).where(Message.id == reply_id, Message.by_bot))

    async def asker_and_decided(self, reply_id: int) -> tuple[int | None, bool]:
        """Who the reply answered (None: that message is gone) and whether a moderator approved
        or rejected it: who may swipe it (bot/discord_front/swipe.py)."""
        answers_id = await self.answered(reply_id)
        async with self.sessions() as session:
            asker = await session.scalar(select(Message.author_id).where(Message.id == answers_id)) if answers_id else None
            decided = await session.scalar(select(func.count()).select_from(Approval).where(Approval.message_id == reply_id))
        return asker, bool(decided)

    async def posted_as(self, reply_id: int) -> int | None:
        """The Discord id the reply was posted as (its first message, when it was split)."""
        async with self.sessions() as session:
            return await session.scalar(select(Message.discord_id).where(Message.id == reply_id))

    async def is_newest(self, reply_id: int, channel_id: int) -> bool:
        """Whether nothing was said in the channel after the reply (only then may it be swiped:
        an older reply is part of the context of what followed)."""
        async with self.sessions() as session:
            newer = await session.scalar(select(func.count(Message.id)).where(
                Message.channel_id == channel_id, Message.id > reply_id, Message.sent))
        return newer == 0

    @retry_when_locked
    async def add(self, reply_id: int, content: str, *, seed: int | None, adapter_version: str | None) -> Shown:
        """Store a new alternative and show it (the first swipe also records the original as
        position 0)."""
        async with self.sessions() as session, session.begin():
            reply = await session.get(Message, reply_id)
            if reply is None:
                raise LookupError(f"reply {reply_id} is gone")
            count = await session.scalar(select(func.count(ReplyAlternative.id)).where(ReplyAlternative.reply_id == reply_id))
            if count == 0:
                session.add(ReplyAlternative(reply_id=reply_id, position=0, content=reply.content, seed=None,
                                             adapter_version=reply.adapter_version, shown=False, created_at=now()))
                count = 1
            session.add(ReplyAlternative(reply_id=reply_id, position=count, content=storable(content), seed=seed,
                                         adapter_version=adapter_version, shown=False, created_at=now()))
            await session.flush()
            await show_in(session, reply, count)
            return Shown(storable(content), count, count + 1)

    @retry_when_locked
    async def show_next(self, reply_id: int) -> Shown | None:
        """Show the alternative after the one shown (round), generating nothing: what 🔄 does once
        a reply has as many alternatives as allowed. None: the reply has no alternatives."""
        async with self.sessions() as session, session.begin():
            reply = await session.get(Message, reply_id)
            rows = (await session.scalars(select(ReplyAlternative).where(ReplyAlternative.reply_id == reply_id)
                                          .order_by(ReplyAlternative.position))).all()
            if reply is None or not rows:
                return None
            shown = next((r.position for r in rows if r.shown), 0)
            position = (shown + 1) % len(rows)
            await show_in(session, reply, position)
            return Shown(rows[position].content, position, len(rows))

    @retry_when_locked
    async def pick(self, reply_id: int, user_id: int | None) -> bool:
        """The alternative shown is chosen, the others rejected (👍, or the conversation went
        on). False when the reply was never swiped (nothing to choose between)."""
        async with self.sessions() as session, session.begin():
            return await pick_shown(session, reply_id, user_id)

    @retry_when_locked
    async def reject(self, reply_id: int, user_id: int) -> bool:
        """👎: the alternative shown is rejected. False when the reply was never swiped."""
        async with self.sessions() as session, session.begin():
            done = await session.execute(update(ReplyAlternative).where(ReplyAlternative.reply_id == reply_id,
                                                                        ReplyAlternative.shown)
                                         .values(chosen=False, picked_by=user_id))
            return done.rowcount > 0

    @retry_when_locked
    async def kept(self, channel_id: int, message_id: int, user_id: int) -> bool:
        """Message `message_id` continued the conversation: the reply before it keeps the
        alternative it shows, unless someone already picked one. True when that made a pick."""
        async with self.sessions() as session, session.begin():
            reply_id = await session.scalar(select(Message.id).where(
                Message.channel_id == channel_id, Message.id < message_id, Message.by_bot, Message.sent)
                .order_by(Message.id.desc()).limit(1))
            if reply_id is None:
                return False
            decided = await session.scalar(select(func.count(ReplyAlternative.id)).where(
                ReplyAlternative.reply_id == reply_id,
                ReplyAlternative.chosen.is_(True) | (ReplyAlternative.shown & ReplyAlternative.chosen.is_(False))))
            if decided:  # a 👍 picked one already, or the one shown got a 👎: going on says nothing more
                return False
            return await pick_shown(session, reply_id, user_id)


async def show_in(session, reply: Message, position: int) -> None:
    """Show alternative `position`: the reply's row takes its text and adapter, and the reply's
    ratings and approval, given to another text, are withdrawn."""
    await session.execute(update(ReplyAlternative).where(ReplyAlternative.reply_id == reply.id)
                          .values(shown=ReplyAlternative.position == position))
    chosen = await session.scalar(select(ReplyAlternative).where(ReplyAlternative.reply_id == reply.id,
                                                                  ReplyAlternative.position == position))
    if reply.content != chosen.content:
        await session.execute(delete(Rating).where(Rating.message_id == reply.id))
        await session.execute(delete(Approval).where(Approval.message_id == reply.id))
    reply.content, reply.adapter_version = chosen.content, chosen.adapter_version


async def pick_shown(session, reply_id: int, user_id: int | None) -> bool:
    rows = (await session.scalars(select(ReplyAlternative).where(ReplyAlternative.reply_id == reply_id))).all()
    if len(rows) < 2 or not any(r.shown for r in rows):
        return False
    for row in rows:
        row.chosen, row.picked_by = row.shown, user_id
    return True
