"""The one schema. Alembic migrations in migrations/ create and change the tables; this module
only describes them for queries. A change here goes with a new revision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Channel(Base):
    """A Discord channel (or the console) the bot has seen."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)  # reply to every message, not only mentions
    context_reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # /reset: forget before this
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

    __table_args__ = (Index("ix_messages_channel_created", "channel_id", "created_at"),)
