"""What the community says about replies: ratings (one per user per reply, changeable),
moderator approvals, and users who asked to be forgotten. The Discord commands and buttons, and
the trainer's selection of approved logs, read and write through here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert, retry_when_locked
from core.db.schema import Approval, Channel, Message, OptOut, Rating
from core.db.history import now, storable

THUMB_UP, THUMB_DOWN = 5, 1  # what the 👍 and 👎 buttons store
# The one rating rule: a score of 4-5 counts as a 👍, 1-2 as a 👎, a 3 as neither (summaries,
# the chat-log export's qualifying rule and its preference labels all read it from here).
LIKED_FROM, DISLIKED_UP_TO = 4, 2


def is_liked(score: float) -> bool:
    return score >= LIKED_FROM


def is_disliked(score: float) -> bool:
    return score <= DISLIKED_UP_TO


class NotRatable(ValueError):
    """The message is not one of the bot's replies (or does not exist)."""


@dataclass(frozen=True)
class RatingSummary:
    ratings: int
    thumbs_up: int
    thumbs_down: int
    mean_score: float | None


@dataclass(frozen=True)
class ReplyRef:
    """A stored reply and where it lives (rights are checked in its own channel)."""

    id: int
    channel_id: int
    guild_id: int | None


class Ratings:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def find_reply(self, discord_id: int, *, guild_id: int | None, channel_id: int) -> ReplyRef | None:
        """The posted reply that is Discord message `discord_id`, looked up only where the command
        runs: within its guild, or within the DM itself."""
        async with self.sessions() as session:
            query = (select(Message.id, Message.channel_id, Channel.guild_id).join(Channel, Channel.id == Message.channel_id)
                     .where(Message.discord_id == discord_id, Message.by_bot, Message.sent))
            query = query.where(Channel.guild_id == guild_id) if guild_id is not None else query.where(
                Message.channel_id == channel_id, Channel.guild_id.is_(None))
            row = (await session.execute(query)).first()
        return ReplyRef(*row) if row else None

    async def reply(self, reply_id: int) -> ReplyRef | None:
        """The reply with this database id (a rating button's): a button is pressed only on a
        posted message, possibly before the bot recorded that it was posted."""
        async with self.sessions() as session:
            row = (await session.execute(
                select(Message.id, Message.channel_id, Channel.guild_id).join(Channel, Channel.id == Message.channel_id)
                .where(Message.id == reply_id, Message.by_bot))).first()
        return ReplyRef(*row) if row else None

    async def latest_reply(self, channel_id: int) -> int | None:
        """The database id of the bot's latest posted reply in the channel (what /rate rates by default)."""
        async with self.sessions() as session:
            return await session.scalar(select(Message.id).where(Message.channel_id == channel_id, Message.by_bot, Message.sent)
                                        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))

    @retry_when_locked
    async def rate(self, reply_id: int, user_id: int, score: int, *, comment: str | None = None, via: str = "command") -> bool:
        """Store or change `user_id`'s rating of the reply (an upsert: a double click stores one
        rating); True when it replaced an earlier one."""
        if not 1 <= score <= 5:
            raise ValueError(f"score must be 1 to 5, got {score}")
        comment = storable(comment) if comment is not None else None
        async with self.sessions() as session, session.begin():
            await rateable(session, reply_id)
            existed = await session.scalar(select(Rating.id).where(Rating.message_id == reply_id, Rating.user_id == user_id))
            at = now()
            await session.execute(insert(session, Rating).values(
                message_id=reply_id, user_id=user_id, score=score, comment=comment, via=via, created_at=at, updated_at=at,
            ).on_conflict_do_update(index_elements=["message_id", "user_id"],
                                    set_={"score": score, "comment": comment, "via": via, "updated_at": at}))
            return existed is not None

    async def summary(self, reply_id: int) -> RatingSummary:
        async with self.sessions() as session:
            row = (await session.execute(select(
                func.count(Rating.id),
                func.sum(case((Rating.score >= LIKED_FROM, 1), else_=0)),
                func.sum(case((Rating.score <= DISLIKED_UP_TO, 1), else_=0)),
                func.avg(Rating.score),
            ).where(Rating.message_id == reply_id))).one()
        return RatingSummary(row[0], row[1] or 0, row[2] or 0, float(row[3]) if row[3] is not None else None)

    @retry_when_locked
    async def decide(self, reply_id: int, moderator_id: int, approved: bool) -> None:
        """A moderator approves the reply for training, or rejects it (a later decision replaces it)."""
        async with self.sessions() as session, session.begin():
            await rateable(session, reply_id)
            at = now()
            await session.execute(insert(session, Approval).values(
                message_id=reply_id, approved=approved, moderator_id=moderator_id, decided_at=at,
            ).on_conflict_do_update(index_elements=["message_id"],
                                    set_={"approved": approved, "moderator_id": moderator_id, "decided_at": at}))

    async def opted_out(self, user_id: int) -> bool:
        async with self.sessions() as session:
            return await session.get(OptOut, user_id) is not None

    async def forget_user(self, user_id: int):
        """/forget-me (see core/db/privacy.py: Privacy.forget_user, which this is)."""
        from core.db.privacy import Privacy

        return await Privacy(self.sessions).forget_user(user_id)


async def rateable(session, reply_id: int) -> None:
    """Raise NotRatable unless `reply_id` is one of the bot's replies. (Replies are found by
    their buttons, which exist only on posted messages, or by Discord id or as the latest,
    which count only posted replies; one that was never posted is discarded.)"""
    if await session.scalar(select(Message.id).where(Message.id == reply_id, Message.by_bot)) is None:
        raise NotRatable(reply_id)
