"""Per-channel conversation history in the database: what was said, by whom, and which adapter
wrote each reply. History survives restarts; /reset hides older messages from the context
without deleting them.

Several bot processes (shards) may write to one PostgreSQL database at once: a channel is
recorded with INSERT ... ON CONFLICT, never check-then-insert, and a Discord message that is
already stored (the same event delivered twice: a replayed gateway event, or two processes
running the same shard by mistake) is refused with AlreadyStored, so it is answered once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert
from core.db.schema import Channel, Message


def now() -> datetime:
    return datetime.now(timezone.utc)


def storable(text: str) -> str:
    """Text as every supported database can hold it: PostgreSQL refuses the NUL character, which
    anyone can put in a message or a display name."""
    return text.replace("\x00", "\ufffd")


class AlreadyStored(Exception):
    """This Discord message is stored already: it was handled (or is being handled) elsewhere."""


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
        kept up to date when a channel is renamed). Raises AlreadyStored for a Discord message
        that is stored already."""
        name = storable(channel_name or "")[:100]
        async with self.sessions() as session, session.begin():
            await session.execute(insert(session, Channel).values(id=channel_id, guild_id=guild_id, name=name, created_at=now())
                                  .on_conflict_do_nothing(index_elements=["id"]))
            if name:
                await session.execute(update(Channel).where(Channel.id == channel_id, Channel.name != name)
                                      .values(name=name, guild_id=func.coalesce(guild_id, Channel.guild_id)))
            stored = await session.scalar(
                insert(session, Message).values(
                    channel_id=channel_id, discord_id=discord_id, author_id=author_id,
                    author_name=storable(author_name)[:100], by_bot=by_bot, content=storable(content),
                    reply_to_discord_id=reply_to_discord_id, adapter_version=adapter_version, created_at=now())
                .on_conflict_do_nothing(index_elements=["discord_id"]).returning(Message.id))
            if stored is None:
                raise AlreadyStored(discord_id)
            return stored

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
            at = now()
            await session.execute(insert(session, Channel).values(id=channel_id, created_at=at, context_reset_at=at)
                                  .on_conflict_do_update(index_elements=["id"], set_={"context_reset_at": at}))

    async def set_discord_id(self, message_id: int, discord_id: int) -> None:
        """Record the Discord id of a reply once it has been sent."""
        async with self.sessions() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is not None:
                message.discord_id = discord_id
