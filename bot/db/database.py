"""The database: its URL, the async engine (SQLite in WAL mode), and migrating it to head.

The schema is created and upgraded only by Alembic (migrations/); the bot applies pending
migrations at start-up, and `alembic upgrade head` / `alembic downgrade base` work from the
project root with the same INOSUKE_DATABASE_URL.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bot.paths import PROJECT_ROOT, state_dir


def database_url() -> str:
    """$INOSUKE_DATABASE_URL, else a SQLite file in the state folder."""
    return os.environ.get("INOSUKE_DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir() / 'inosuke.db'}"


def make_engine(url: str | None = None) -> AsyncEngine:
    url = url or database_url()
    if url.startswith("sqlite") and ":///" in url:
        Path(url.split(":///", 1)[1]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def sqlite_pragmas(connection, _record) -> None:
            # WAL: readers never block the writer (the bot reads history while storing replies);
            # foreign keys: SQLite leaves them off unless asked, and /forget-me relies on cascades.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None):
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = url or database_url()
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Apply pending migrations (synchronous: call it before the event loop, or in a thread)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
