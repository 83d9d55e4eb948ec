"""The database: its URL, the async engine (SQLite in WAL mode), and migrating it to head.

The schema is created and upgraded only by Alembic (migrations/); the bot applies pending
migrations at start-up, and `alembic upgrade head` / `alembic downgrade base` work from the
project root with the same INOSUKE_DATABASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from core.paths import PROJECT_ROOT, state_dir


def database_url() -> str:
    """$INOSUKE_DATABASE_URL, else a SQLite file in the state folder."""
    return os.environ.get("INOSUKE_DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir() / 'inosuke.db'}"


def make_engine(url: str | None = None, *, foreign_keys: bool = True) -> AsyncEngine:
    """The bot's async engine (every store in core/db is async). Migrations run with SQLite's
    foreign keys off: a batch migration rebuilds a table by dropping it, and with them on that
    drop would cascade into every row that refers to it."""
    url = url or database_url()
    make_sqlite_folder(url)
    engine = create_async_engine(url)
    set_sqlite_pragmas(engine.sync_engine, foreign_keys)
    return engine


def make_sync_engine(url: str | None = None) -> Engine:
    """A plain synchronous engine on the same database, for the offline trainer (no event loop)."""
    url = sync_url(url or database_url())
    make_sqlite_folder(url)
    engine = create_engine(url)
    set_sqlite_pragmas(engine)
    return engine


def sync_url(url: str) -> str:
    """The same database through a synchronous driver."""
    return url.replace("sqlite+aiosqlite:", "sqlite:", 1)


def make_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        Path(url.split(":///", 1)[1]).expanduser().parent.mkdir(parents=True, exist_ok=True)


def set_sqlite_pragmas(engine: Engine, foreign_keys: bool = True) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def sqlite_pragmas(connection, _record) -> None:
        # WAL: readers never block the writer (the bot reads history while storing replies);
        # foreign keys: SQLite leaves them off unless asked, and /forget-me relies on cascades.
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


@asynccontextmanager
async def connect(url: str | None = None) -> AsyncIterator[async_sessionmaker]:
    """Sessions on the database for the length of a `async with` block; the engine is disposed after."""
    engine = make_engine(url)
    try:
        yield sessions(engine)
    finally:
        await engine.dispose()


@contextmanager
def connect_sync(url: str | None = None) -> Iterator[sessionmaker]:
    """Synchronous sessions for the length of a `with` block (the trainer, scripts, tests)."""
    engine = make_sync_engine(url)
    try:
        yield sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()


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
