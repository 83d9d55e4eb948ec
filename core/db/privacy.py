"""What users can take back, applied to the stored history: an edited message is stored as it
reads now, a deleted one is deleted, and /forget-me removes everything by or about a user.

An edit withdraws the moderators' approvals and the ratings of every reply whose context held
the edited message: what was endorsed is not what would be trained on any more. `window` is the
number of recent messages a reply's context is built from (the bot's chat.history_messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert, retry_when_locked
from core.db.history import now
from core.db.schema import Approval, Message, OptOut, Rating, ReplyAlternative


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


async def replies_that_saw(session, message: Message, window: int) -> list[int]:
    """The bot's replies whose context could hold `message`: those among the next `window`
    messages of its channel (a context is at most that many recent messages)."""
    later = (await session.execute(select(Message.id, Message.by_bot)
                                   .where(Message.channel_id == message.channel_id, Message.id > message.id)
                                   .order_by(Message.id).limit(window))).all()
    return [row.id for row in later if row.by_bot]


class Privacy:
    def __init__(self, sessions: async_sessionmaker, window: int = 60):
        self.sessions, self.window = sessions, window

    @retry_when_locked
    async def message_edited(self, discord_id: int, content: str) -> int | None:
        """Store the edited text; withdraw the approvals and ratings of replies that saw the old
        one. Returns how many endorsements were withdrawn (None: not a stored message)."""
        async with self.sessions() as session, session.begin():
            message = await session.scalar(select(Message).where(Message.discord_id == discord_id))
            if message is None or message.by_bot or message.content == content:
                return None if message is None or message.by_bot else 0
            message.content = content
            replies = await replies_that_saw(session, message, self.window)
            if not replies:
                return 0
            approvals = (await session.execute(delete(Approval).where(Approval.message_id.in_(replies)))).rowcount
            ratings = (await session.execute(delete(Rating).where(Rating.message_id.in_(replies)))).rowcount
            # Swipe picks are endorsements too: the alternatives become undecided again.
            picks = (await session.execute(update(ReplyAlternative).where(
                ReplyAlternative.reply_id.in_(replies), ReplyAlternative.chosen.is_not(None))
                .values(chosen=None, picked_by=None))).rowcount
            return approvals + ratings + picks

    @retry_when_locked
    async def messages_deleted(self, discord_ids: list[int]) -> int:
        """Delete stored messages that were deleted on Discord (a reply's ratings and approval go
        with it; a reply to a deleted message loses its link and is never trained on)."""
        if not discord_ids:
            return 0
        async with self.sessions() as session, session.begin():
            return (await session.execute(delete(Message).where(Message.discord_id.in_(discord_ids)))).rowcount

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
