"""Alembic environment (async): the URL is the bot's (INOSUKE_DATABASE_URL or the default file)."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.db.database import database_url, make_engine
from core.db.schema import Base

config = context.config
target_metadata = Base.metadata


def url() -> str:
    return config.attributes.get("database_url") or database_url()


def run_migrations_offline() -> None:
    context.configure(url=url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Any fixed number: the key of the PostgreSQL advisory lock that migrations hold.
MIGRATION_LOCK = 0x1905_1A05


def do_run_migrations(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode rebuilds the table.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several bot processes (shards) start at once and each applies pending migrations:
            # one at a time, so the others find the schema at head instead of creating it again.
            # Held until the migration transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = make_engine(url(), foreign_keys=False)  # batch rebuilds must not cascade (see make_engine)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
