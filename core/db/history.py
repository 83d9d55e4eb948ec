"""Per-channel conversation history in the database: what was said, by whom, which message each
reply answered, and which adapter wrote it. History survives restarts; /reset hides older
messages from the context without deleting them (every reset is kept, so that training context
stops where the bot's did). A reply counts once it was posted: it is stored unsent first (its
rating buttons carry its id), then marked sent, or discarded if Discord never took it.

Several bot processes (shards) may write to one PostgreSQL database at once: a channel is
recorded with INSERT ... ON CONFLICT, never check-then-insert, and a Discord message that is
already stored (the same event delivered twice: a replayed gateway event, or two processes
running the same shard by mistake) is refused with AlreadyStored, so it is answered once.
Writes are retried while SQLite says "database is locked" (another process writing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.db.database import insert, retry_when_locked
from core.db.schema import Channel, ContextReset, Message


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


def stored(message: Message) -> StoredMessage:
    return StoredMessage(message.author_id, message.author_name, message.by_bot, message.content, message.created_at)


async def ensure_channel(session, channel_id: int, guild_id: int | None = None, channel_name: str | None = None) -> None:
    """The channel's row, created on first sight (an upsert: two writers may see it first at
    once); its guild and name are kept up to date when known."""
    name = storable(channel_name or "")[:100]
    await session.execute(insert(session, Channel).values(id=channel_id, guild_id=guild_id, name=name, created_at=now())
                          .on_conflict_do_nothing(index_elements=["id"]))
    if name:
        await session.execute(update(Channel).where(Channel.id == channel_id, Channel.name != name)
                              .values(name=name, guild_id=func.coalesce(guild_id, Channel.guild_id)))
    if guild_id is not None:
        await session.execute(update(Channel).where(Channel.id == channel_id, Channel.guild_id.is_(None))
                              .values(guild_id=guild_id))


def context_query(channel_id: int, message_id: int, message_at: datetime, limit: int) -> Select:
    """The context a reply to message `message_id` is built from, newest first: the channel's
    posted messages up to that one, since the last /reset before it. One query for the bot
    (serving) and the trainer (chat-log samples), so a sample's context is exactly the bot's."""
    reset = (select(func.max(ContextReset.reset_at))
             .where(ContextReset.channel_id == channel_id, ContextReset.reset_at < message_at).scalar_subquery())
    return (select(Message)
            .where(Message.channel_id == channel_id, Message.id <= message_id, Message.sent,
                   or_(reset.is_(None), Message.created_at > reset))
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))


class History:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    @retry_when_locked
    async def add(self, channel_id: int, author_id: int, author_name: str, content: str, *, by_bot: bool = False,
                  discord_id: int | None = None, reply_to_discord_id: int | None = None,
                  adapter_version: str | None = None, guild_id: int | None = None, channel_name: str | None = None,
                  answers_id: int | None = None, sent: bool = True) -> int:
        """Store a message (a reply: with the id of the message it answered, and sent=False until
        it is posted); the channel is recorded on first sight. Raises AlreadyStored for a Discord
        message that is stored already."""
        async with self.sessions() as session, session.begin():
            await ensure_channel(session, channel_id, guild_id, channel_name)
            stored_id = await session.scalar(
                insert(session, Message).values(
                    channel_id=channel_id, discord_id=discord_id, author_id=author_id,
                    author_name=storable(author_name)[:100], by_bot=by_bot, content=storable(content),
                    reply_to_discord_id=reply_to_discord_id, adapter_version=adapter_version, created_at=now(),
                    answers_id=answers_id, sent=sent)
                .on_conflict_do_nothing(index_elements=["discord_id"]).returning(Message.id))
            if stored_id is None:
                raise AlreadyStored(discord_id)
            return stored_id

    async def recent(self, channel_id: int, limit: int = 60) -> list[StoredMessage]:
        """The channel's latest messages since its last /reset, oldest first (replies that were
        never posted are not part of the conversation)."""
        async with self.sessions() as session:
            channel = await session.get(Channel, channel_id)
            query = select(Message).where(Message.channel_id == channel_id, Message.sent)
            if channel is not None and channel.context_reset_at is not None:
                query = query.where(Message.created_at > channel.context_reset_at)
            rows = (await session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))).all()
        return [stored(m) for m in reversed(rows)]

    async def context(self, channel_id: int, message_id: int, limit: int = 60) -> list[StoredMessage]:
        """The context of a reply to `message_id`, oldest first (empty if that message is gone)."""
        async with self.sessions() as session:
            message = await session.get(Message, message_id)
            if message is None:
                return []
            rows = (await session.scalars(context_query(channel_id, message_id, message.created_at, limit))).all()
        return [stored(m) for m in reversed(rows)]

    @retry_when_locked
    async def reset(self, channel_id: int, guild_id: int | None = None) -> None:
        async with self.sessions() as session, session.begin():
            await ensure_channel(session, channel_id, guild_id)
            at = now()
            await session.execute(update(Channel).where(Channel.id == channel_id).values(context_reset_at=at))
            session.add(ContextReset(channel_id=channel_id, reset_at=at))

    @retry_when_locked
    async def mark_sent(self, message_id: int, discord_id: int | None = None) -> None:
        """The reply was posted (as Discord message `discord_id`): from now on it is part of the
        conversation and can be rated."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(Message).where(Message.id == message_id).values(sent=True, discord_id=discord_id))

    @retry_when_locked
    async def discard(self, message_id: int) -> None:
        """A reply that could not be posted: it never happened."""
        async with self.sessions() as session, session.begin():
            await session.execute(delete(Message).where(Message.id == message_id, Message.sent.is_(False)))
