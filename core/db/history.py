"""Per-channel conversation history in the database: what was said, by whom, and which adapter
wrote each reply. History survives restarts; /reset hides older messages from the context
without deleting them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.schema import Channel, Message


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class StoredMessage:
    author_id: int
    author_name: str
    by_bot: bool
    content: str
    created_at: datetime


class History:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def add(self, channel_id: int, author_id: int, author_name: str, content: str, *, by_bot: bool = False,
                  discord_id: int | None = None, reply_to_discord_id: int | None = None,
                  adapter_version: str | None = None, guild_id: int | None = None, channel_name: str | None = None) -> int:
        """Store a message; the channel is recorded on first sight (its guild and name when known,
        kept up to date when a channel is renamed)."""
        async with self.sessions() as session, session.begin():
            channel = await session.get(Channel, channel_id)
            if channel is None:
                session.add(Channel(id=channel_id, guild_id=guild_id, name=(channel_name or "")[:100], created_at=now()))
                await session.flush()
            elif channel_name and channel.name != channel_name[:100]:
                channel.name, channel.guild_id = channel_name[:100], guild_id if guild_id is not None else channel.guild_id
            message = Message(channel_id=channel_id, discord_id=discord_id, author_id=author_id,
                              author_name=author_name[:100], by_bot=by_bot, content=content,
                              reply_to_discord_id=reply_to_discord_id, adapter_version=adapter_version, created_at=now())
            session.add(message)
            await session.flush()
            return message.id

    async def recent(self, channel_id: int, limit: int = 60) -> list[StoredMessage]:
        """The channel's latest messages since its last /reset, oldest first."""
        async with self.sessions() as session:
            channel = await session.get(Channel, channel_id)
            query = select(Message).where(Message.channel_id == channel_id)
            if channel is not None and channel.context_reset_at is not None:
                query = query.where(Message.created_at > channel.context_reset_at)
            rows = (await session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))).all()
        return [StoredMessage(m.author_id, m.author_name, m.by_bot, m.content, m.created_at) for m in reversed(rows)]

    async def reset(self, channel_id: int) -> None:
        async with self.sessions() as session, session.begin():
            channel = await session.get(Channel, channel_id)
            if channel is None:
                session.add(Channel(id=channel_id, created_at=now(), context_reset_at=now()))
            else:
                channel.context_reset_at = now()

    async def set_discord_id(self, message_id: int, discord_id: int) -> None:
        """Record the Discord id of a reply once it has been sent."""
        async with self.sessions() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is not None:
                message.discord_id = discord_id
