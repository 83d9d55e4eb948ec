"""What the community says about replies: ratings (one per user per reply, changeable),
moderator approvals, and users who asked to be forgotten. The Discord commands and buttons, and
the trainer's selection of approved logs, read and write through here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert
from core.db.schema import Approval, Message, OptOut, Rating
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


class Ratings:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def reply_for_discord_message(self, discord_id: int) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(select(Message.id).where(Message.discord_id == discord_id, Message.by_bot))

    async def latest_reply(self, channel_id: int) -> int | None:
        """The database id of the bot's latest reply in the channel (what /rate rates by default)."""
        async with self.sessions() as session:
            return await session.scalar(select(Message.id).where(Message.channel_id == channel_id, Message.by_bot)
                                        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))

    async def rate(self, reply_id: int, user_id: int, score: int, *, comment: str | None = None, via: str = "command") -> bool:
        """Store or change `user_id`'s rating of the reply; True when it replaced an earlier one.
        An upsert: the same user pressing twice at once (or in two processes) keeps one rating."""
        if not 1 <= score <= 5:
            raise ValueError(f"score must be 1 to 5, got {score}")
        comment = storable(comment) if comment is not None else None
        async with self.sessions() as session, session.begin():
            reply = await session.get(Message, reply_id)
            if reply is None or not reply.by_bot:
                raise NotRatable(reply_id)
            earlier = await session.scalar(select(Rating.id).where(Rating.message_id == reply_id, Rating.user_id == user_id))
            at = now()
            await session.execute(insert(session, Rating).values(
                message_id=reply_id, user_id=user_id, score=score, comment=comment, via=via, created_at=at, updated_at=at,
            ).on_conflict_do_update(index_elements=["message_id", "user_id"],
                                    set_={"score": score, "comment": comment, "via": via, "updated_at": at}))
            return earlier is not None

    async def summary(self, reply_id: int) -> RatingSummary:
        async with self.sessions() as session:
            row = (await session.execute(select(
                func.count(Rating.id),
                func.sum(case((Rating.score >= LIKED_FROM, 1), else_=0)),
                func.sum(case((Rating.score <= DISLIKED_UP_TO, 1), else_=0)),
                func.avg(Rating.score),
            ).where(Rating.message_id == reply_id))).one()
        return RatingSummary(row[0], row[1] or 0, row[2] or 0, float(row[3]) if row[3] is not None else None)

    async def decide(self, reply_id: int, moderator_id: int, approved: bool) -> None:
        """A moderator approves the reply for training, or rejects it (a later decision replaces it)."""
        async with self.sessions() as session, session.begin():
            reply = await session.get(Message, reply_id)
            if reply is None or not reply.by_bot:
                raise NotRatable(reply_id)
            at = now()
            await session.execute(insert(session, Approval).values(
                message_id=reply_id, approved=approved, moderator_id=moderator_id, decided_at=at,
            ).on_conflict_do_update(index_elements=["message_id"],
                                    set_={"approved": approved, "moderator_id": moderator_id, "decided_at": at}))

    async def forget_user(self, user_id: int) -> tuple[int, int]:
        """/forget-me: delete the user's messages and ratings and record the opt-out.
        Returns (messages deleted, ratings deleted)."""
        async with self.sessions() as session, session.begin():
            ratings = (await session.execute(delete(Rating).where(Rating.user_id == user_id))).rowcount
            messages = (await session.execute(delete(Message).where(Message.author_id == user_id, Message.by_bot.is_(False)))).rowcount
            await session.execute(insert(session, OptOut).values(user_id=user_id, created_at=now())
                                  .on_conflict_do_nothing(index_elements=["user_id"]))
        return messages, ratings

    async def opted_out(self, user_id: int) -> bool:
        async with self.sessions() as session:
            return await session.get(OptOut, user_id) is not None
