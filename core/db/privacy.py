"""What users can take back, applied to the stored history: an edited message is stored as it
reads now, a deleted one is deleted, and /forget-me removes everything by or about a user.

An edit withdraws the moderators' approvals and the ratings of every reply whose context held
the edited message: what was endorsed is not what would be trained on any more. `window` is the
number of recent messages a reply's context is built from (the bot's chat.history_messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert, retry_when_locked
from core.db.history import now
from core.db.schema import Approval, ContextReset, Message, OptOut, Rating, ReplyAlternative


@dataclass
class Forgotten:
    """What /forget-me removed."""

    messages: int = 0  # the user's own messages
    replies: int = 0  # the bot's replies to them
    ratings: int = 0  # the user's ratings
    approvals: int = 0  # moderator decisions that no longer carry the user's id
    alternatives: int = 0  # swiped alternatives of replies to them or whose context held their words
    picks: int = 0  # alternatives the user picked or rejected (undecided again)
    touched_replies: set[int] = field(default_factory=set)  # replies whose context held the user's words (staged files)


@dataclass
class Withdrawn:
    """What an edit or a delete on Discord took back."""

    endorsements: int = 0  # approvals, ratings and swipe picks of replies that saw the old text
    replies: set[int] = field(default_factory=set)  # replies whose staged training rows held it (core/staged_data.py)


async def replies_that_saw(session, message: Message, window: int) -> list[int]:
    """The bot's replies whose context could hold `message`: those among the next `window`
    messages of its channel (a context is at most that many recent messages), unless a /reset
    came between: a reply's context starts after the last reset before the message it answers
    (core/db/history.py's context_query), so `message` is out of it when a reset at or after it
    came before that message."""
    later = (await session.execute(select(Message.id, Message.by_bot, Message.answers_id, Message.created_at)
                                   .where(Message.channel_id == message.channel_id, Message.id > message.id)
                                   .order_by(Message.id).limit(window))).all()
    replies = [row for row in later if row.by_bot]
    cutoff = await session.scalar(select(func.min(ContextReset.reset_at)).where(
        ContextReset.channel_id == message.channel_id, ContextReset.reset_at >= message.created_at))
    if cutoff is None or not replies:
        return [row.id for row in replies]
    answered = {row.id: row.created_at for row in later}
    missing = [row.answers_id for row in replies if row.answers_id is not None and row.answers_id not in answered]
    if missing:
        answered |= dict((await session.execute(select(Message.id, Message.created_at).where(Message.id.in_(missing)))).all())
    # A reply whose message is gone is never trained on; its own time stands in for it.
    return [row.id for row in replies if answered.get(row.answers_id, row.created_at) <= cutoff]


class Privacy:
    def __init__(self, sessions: async_sessionmaker, window: int = 60):
        self.sessions, self.window = sessions, window

    @retry_when_locked
    async def message_edited(self, discord_id: int, content: str) -> Withdrawn | None:
        """Store the edited text; withdraw the approvals and ratings of replies that saw the old
        one (None: not a stored message). The caller purges `replies` from staged files: their
        rows hold the old text."""
        async with self.sessions() as session, session.begin():
            message = await session.scalar(select(Message).where(Message.discord_id == discord_id))
            if message is None or message.by_bot or message.content == content:
                return None if message is None or message.by_bot else Withdrawn()
            message.content = content
            replies = await replies_that_saw(session, message, self.window)
            if not replies:
                return Withdrawn()
            approvals = (await session.execute(delete(Approval).where(Approval.message_id.in_(replies)))).rowcount
            ratings = (await session.execute(delete(Rating).where(Rating.message_id.in_(replies)))).rowcount
            # Swipe picks are endorsements too: the alternatives become undecided again.
            picks = (await session.execute(update(ReplyAlternative).where(
                ReplyAlternative.reply_id.in_(replies), ReplyAlternative.chosen.is_not(None))
                .values(chosen=None, picked_by=None))).rowcount
            return Withdrawn(approvals + ratings + picks, set(replies))

    @retry_when_locked
    async def messages_deleted(self, discord_ids: list[int]) -> Withdrawn:
        """Delete stored messages that were deleted on Discord (a reply's ratings and approval go
        with it; a reply to a deleted message loses its link and is never trained on). `replies`:
        the deleted replies, the replies to deleted messages and those whose context held them,
        whose staged training rows the caller purges."""
        gone = Withdrawn()
        if not discord_ids:
            return gone
        async with self.sessions() as session, session.begin():
            deleted = (await session.scalars(select(Message).where(Message.discord_id.in_(discord_ids)))).all()
            for message in deleted:  # a reply of the bot's too: later replies' contexts held its text
                if message.by_bot:
                    gone.replies.add(message.id)
                gone.replies.update(await replies_that_saw(session, message, self.window))
            ids = [m.id for m in deleted]
            if ids:
                gone.replies.update(await session.scalars(select(Message.id).where(Message.answers_id.in_(ids), Message.by_bot)))
                await session.execute(delete(Message).where(Message.id.in_(ids)))
        return gone

    @retry_when_locked
    async def forget_user(self, user_id: int) -> Forgotten:
        """/forget-me: delete the user's messages, the bot's replies to them and the user's
        ratings; keep the decisions they made as a moderator without their id; record the
        opt-out (everything they write from now on stays out of training)."""
        gone = Forgotten()
        async with self.sessions() as session, session.begin():
            theirs = (await session.scalars(select(Message).where(Message.author_id == user_id, Message.by_bot.is_(False)))).all()
            ids = [m.id for m in theirs]
            for message in theirs:
                gone.touched_replies.update(await replies_that_saw(session, message, self.window))
            gone.ratings = (await session.execute(delete(Rating).where(Rating.user_id == user_id))).rowcount
            gone.picks = (await session.execute(update(ReplyAlternative).where(ReplyAlternative.picked_by == user_id)
                                                .values(chosen=None, picked_by=None))).rowcount
            # Alternatives are training data only: those of replies to the user go with the replies,
            # and those of every reply whose context held their words go too (an alternative may
            # quote them). Explicit, not left to ON DELETE CASCADE: it must hold with foreign keys off.
            answering = select(Message.id).where(Message.answers_id.in_(ids), Message.by_bot) if ids else None
            touched = list(gone.touched_replies)
            if ids or touched:
                condition = ReplyAlternative.reply_id.in_(touched)
                if answering is not None:
                    condition = condition | ReplyAlternative.reply_id.in_(answering)
                gone.alternatives = (await session.execute(delete(ReplyAlternative).where(condition))).rowcount
            if ids:
                gone.replies = (await session.execute(delete(Message).where(Message.answers_id.in_(ids), Message.by_bot))).rowcount
                gone.messages = (await session.execute(delete(Message).where(Message.id.in_(ids)))).rowcount
            gone.approvals = (await session.execute(update(Approval).where(Approval.moderator_id == user_id)
                                                    .values(moderator_id=None))).rowcount
            await session.execute(insert(session, OptOut).values(user_id=user_id, created_at=now())
                                  .on_conflict_do_nothing())
        return gone
