"""Alembic environment (async): the URL is the bot's (INOSUKE_DATABASE_URL or the default file)."""

import asyncio

from alembic import context
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


def do_run_migrations(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode rebuilds the table.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
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
