"""The database: its URL, the async engine (SQLite in WAL mode), and migrating it to head.

The schema is created and upgraded only by Alembic (migrations/); the bot applies pending
migrations at start-up, and `alembic upgrade head` / `alembic downgrade base` work from the
project root with the same INOSUKE_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from core.paths import PROJECT_ROOT, state_dir

log = logging.getLogger(__name__)

# How long SQLite waits for another writer before it says "database is locked", and how long a
# write is retried after that (another process, such as the trainer or a second bot, may hold
# the write lock; SQLite also refuses at once when a reading transaction must become a writing one).
BUSY_TIMEOUT_MS = 5000
LOCKED_RETRY_S = 30.0


def database_url() -> str:
    """$INOSUKE_DATABASE_URL, else a SQLite file in the state folder."""
    return os.environ.get("INOSUKE_DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir() / 'inosuke.db'}"


def make_engine(url: str | None = None, *, foreign_keys: bool = True) -> AsyncEngine:
    """The bot's async engine (every store in core/db is async). Migrations run with SQLite's
    foreign keys off: a batch migration rebuilds a table by dropping it, and with them on that
    drop would cascade into every row that refers to it."""
    url = url or database_url()
    make_sqlite_folder(url)
    engine = checked(create_async_engine, url)
    set_sqlite_pragmas(engine.sync_engine, foreign_keys)
    return engine


def make_sync_engine(url: str | None = None) -> Engine:
    """A plain synchronous engine on the same database, for the offline trainer (no event loop)."""
    url = sync_url(url or database_url())
    make_sqlite_folder(url)
    engine = checked(create_engine, url)
    set_sqlite_pragmas(engine)
    return engine


def checked(create, url: str):
    """An engine, or one line that names the URL (password hidden) and what is wrong with it:
    a mistyped URL, an unknown database, a driver that is not installed or not async."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError

    from core.errors import UserError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise UserError(f"INOSUKE_DATABASE_URL: not a database URL: {url.split('@')[-1]!r} "
                        f"(expected e.g. sqlite+aiosqlite:///state/inosuke.db)") from None
    try:
        return create(url)
    except NoSuchModuleError as exc:
        raise UserError(f"INOSUKE_DATABASE_URL={shown}: unknown database or driver ({exc})") from None
    except InvalidRequestError as exc:  # e.g. sqlite:// with the bot's async engine
        raise UserError(f"INOSUKE_DATABASE_URL={shown}: {exc} (use an async driver, e.g. sqlite+aiosqlite:///...)") from None
    except ImportError as exc:
        raise UserError(f"INOSUKE_DATABASE_URL={shown}: its driver is not installed ({exc.name or exc}); "
                        f"pip install it in .venv") from None


def sync_url(url: str) -> str:
    """The same database through a synchronous driver."""
    return url.replace("sqlite+aiosqlite:", "sqlite:", 1)


def make_sqlite_folder(url: str) -> None:
    """A SQLite file's folder is created; a file that cannot be opened (a folder in its place,
    no permission) is one clear line here rather than an error from a driver thread."""
    if url.startswith("sqlite") and ":///" in url:
        import sqlite3

        from core.errors import UserError

        path = Path(url.split(":///", 1)[1].split("?", 1)[0]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            sqlite3.connect(path).close()
        except sqlite3.Error as exc:
            raise UserError(f"INOSUKE_DATABASE_URL: cannot open the SQLite database {path} ({exc})") from None


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
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()


def is_locked(error: BaseException) -> bool:
    """SQLite's "database is locked" / "database is busy": another connection holds the write lock."""
    return isinstance(error, OperationalError) and any(
        words in str(error.orig if error.orig is not None else error).lower() for words in ("database is locked", "database is busy"))


def retry_when_locked(write):
    """Retry an async write (one whole transaction) while the database is locked by another
    writer, for up to LOCKED_RETRY_S seconds, so that no message or rating is lost to it."""

    @functools.wraps(write)
    async def retrying(*args, **kwargs):
        deadline, delay = time.monotonic() + LOCKED_RETRY_S, 0.02
        while True:
            try:
                return await write(*args, **kwargs)
            except OperationalError as error:
                if not is_locked(error) or time.monotonic() > deadline:
                    raise
                log.warning("database is locked by another writer; retrying %s", write.__qualname__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    return retrying


def dialect_insert(session, table):
    """INSERT with ON CONFLICT (an upsert) for the session's database: SQLite or PostgreSQL."""
    name = session.bind.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise NotImplementedError(f"upserts on {name}")
    return insert(table)


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
