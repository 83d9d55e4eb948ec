"""The one schema. Alembic migrations in migrations/ create and change the tables; this module
only describes them for queries. A change here goes with a new revision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Channel(Base):
    """A Discord channel (or the console) the bot has seen."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100), default="")
    context_reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the latest /reset: forget before this
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """Every message the bot saw in a channel it serves, and every reply it sent."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="CASCADE"))
    discord_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # None in the console
    author_id: Mapped[int] = mapped_column(BigInteger)
    author_name: Mapped[str] = mapped_column(String(100))
    by_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    content: Mapped[str] = mapped_column(Text)
    reply_to_discord_id: Mapped[int | None] = mapped_column(BigInteger)
    adapter_version: Mapped[str | None] = mapped_column(String(40))  # which adapter wrote a reply
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The message a reply answered (None for users' messages, and for a reply whose message is gone).
    answers_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL", name="fk_messages_answers_id"))
    # A reply is stored before it is posted (its buttons carry its id) and counts once Discord took it.
    sent: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (Index("ix_messages_channel_created", "channel_id", "created_at"),
                      Index("ix_messages_answers_id", "answers_id"))


class Rating(Base):
    """One user's rating of one bot reply (changeable): 👍 = 5, 👎 = 1, /rate = 1..5."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[int] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(16))  # "button" or "command"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("message_id", "user_id", name="uq_ratings_message_user"),
                      CheckConstraint("score BETWEEN 1 AND 5", name="ck_ratings_score"))


class Approval(Base):
    """A moderator's decision on a reply: approved for training, or rejected (never trained on)."""

    __tablename__ = "approvals"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    approved: Mapped[bool] = mapped_column(Boolean)
    moderator_id: Mapped[int | None] = mapped_column(BigInteger)  # None once that moderator used /forget-me
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContextReset(Base):
    """One /reset of a channel: the context of every later reply starts after it."""

    __tablename__ = "context_resets"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="CASCADE"))
    reset_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_context_resets_channel_at", "channel_id", "reset_at"),)


class OptOut(Base):
    """A user who asked to be forgotten: excluded from training from then on."""

    __tablename__ = "opt_outs"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReplyAlternative(Base):
    """One alternative of a swiped reply (🔄): position 0 is the reply as first written. The
    reply's row (messages.content) holds the one shown; `chosen` says what people picked."""

    __tablename__ = "reply_alternatives"
    id: Mapped[int] = mapped_column(primary_key=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    content: Mapped[str] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)  # what it was sampled with (None: the original, seed not kept)
    adapter_version: Mapped[str | None] = mapped_column(String(40))
    shown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    chosen: Mapped[bool | None] = mapped_column(Boolean)  # True picked, False rejected, None undecided
    picked_by: Mapped[int | None] = mapped_column(BigInteger)  # whose 👍/👎/next message decided it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("reply_id", "position", name="uq_reply_alternatives_reply_position"),)


class TrainingRun(Base):
    """One `trainer retrain`: the data it used, the gate's metrics and its decision."""

    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # running, promoted, rejected, failed
    profile: Mapped[str] = mapped_column(String(100))
    candidate_version: Mapped[str | None] = mapped_column(String(40))
    previous_version: Mapped[str | None] = mapped_column(String(40))
    curated_samples: Mapped[int] = mapped_column(default=0)
    approved_samples: Mapped[int] = mapped_column(default=0)
    preference_labels: Mapped[int] = mapped_column(default=0)
    last_reply_id: Mapped[int | None] = mapped_column()
    metrics: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
