"""The database: its URL, the async engine (SQLite in WAL mode, or PostgreSQL), and migrating it
to head.

Two databases are supported: a SQLite file (the default; one bot process) and PostgreSQL (several
bot processes, shards and the trainer on one database). The bot and Alembic use the async
drivers (aiosqlite, asyncpg); the offline trainer the synchronous ones (sqlite3, psycopg 3), on
the same URL. The schema is created and upgraded only by Alembic (migrations/); the bot applies
pending migrations at start-up, and `alembic upgrade head` / `alembic downgrade base` work from
the project root with the same INOSUKE_DATABASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from core.errors import UserError
from core.paths import PROJECT_ROOT, state_dir

# Each supported database by its SQLAlchemy backend name: (async driver, synchronous driver).
DRIVERS = {"sqlite": ("aiosqlite", "pysqlite"), "postgresql": ("asyncpg", "psycopg")}
# What people paste: Heroku-style postgres://, plain postgresql:// and the usual driver names.
BACKEND_ALIASES = {"postgres": "postgresql"}
KNOWN_DRIVERS = {"sqlite": {"aiosqlite", "pysqlite"}, "postgresql": {"asyncpg", "psycopg", "psycopg2", "pg8000", "psycopg_async"}}


def database_url() -> str:
    """$INOSUKE_DATABASE_URL, else a SQLite file in the state folder."""
    return os.environ.get("INOSUKE_DATABASE_URL") or f"sqlite+aiosqlite:///{state_dir() / 'inosuke.db'}"


def parse_url(url: str) -> URL:
    """The URL with its backend checked: SQLite or PostgreSQL, with any driver named or none.
    A URL that names another database, or is not a URL, is a one-line error (password hidden)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"INOSUKE_DATABASE_URL: not a database URL: {shown(url)!r} "
                        "(e.g. postgresql+asyncpg://user:password@host/inosuke or sqlite+aiosqlite:///state/inosuke.db)") from None
    backend, _, driver = parsed.drivername.partition("+")
    backend = BACKEND_ALIASES.get(backend, backend)
    if backend not in DRIVERS or (driver and driver not in KNOWN_DRIVERS[backend]):
        raise UserError(f"INOSUKE_DATABASE_URL: {parsed.drivername!r} is not supported: use sqlite+aiosqlite:///FILE "
                        "or postgresql+asyncpg://user:password@host/database")
    return parsed.set(drivername=backend)


def async_url(url: str) -> URL:
    """The database through the bot's async driver (aiosqlite or asyncpg), whatever driver the URL names."""
    parsed = parse_url(url)
    return parsed.set(drivername=f"{parsed.drivername}+{DRIVERS[parsed.drivername][0]}")


def sync_url(url: str) -> URL:
    """The same database through a synchronous driver (sqlite3 or psycopg 3), for the trainer."""
    parsed = parse_url(url)
    return parsed.set(drivername=f"{parsed.drivername}+{DRIVERS[parsed.drivername][1]}")


def shown(url: str | URL) -> str:
    """The URL as it may be printed: never its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable>"


def engine_options(url: URL, *, asynchronous: bool = False) -> dict:
    if url.get_backend_name() == "postgresql":
        # PostgreSQL restarts and idle connections get cut by proxies; a bot runs for months:
        # check a pooled connection before using it.
        return {"pool_pre_ping": True}
    if asynchronous:
        # SQLite has one writer at a time. With several pooled connections, a transaction that
        # waits for the write lock waits inside SQLite (busy_timeout) while the coroutine holding
        # the lock waits for the busy event loop: under load the wait ran past the timeout and the
        # write failed ("database is locked": a message lost). One connection: the bot's database
        # work queues in asyncio instead, and nothing fails.
        from sqlalchemy.pool import AsyncAdaptedQueuePool

        return {"poolclass": AsyncAdaptedQueuePool, "pool_size": 1, "max_overflow": 0, "pool_timeout": 120}
    return {}


def make_engine(url: str | None = None, *, foreign_keys: bool = True) -> AsyncEngine:
    """The bot's async engine (every store in core/db is async). Migrations run with SQLite's
    foreign keys off: a batch migration rebuilds a table by dropping it, and with them on that
    drop would cascade into every row that refers to it."""
    url = async_url(url or database_url())
    make_sqlite_folder(url)
    engine = create_async_engine(url, **engine_options(url, asynchronous=True))
    set_sqlite_pragmas(engine.sync_engine, foreign_keys)
    return engine


def make_sync_engine(url: str | None = None) -> Engine:
    """A plain synchronous engine on the same database, for the offline trainer (no event loop)."""
    url = sync_url(url or database_url())
    make_sqlite_folder(url)
    engine = create_engine(url, **engine_options(url))
    set_sqlite_pragmas(engine)
    return engine


def make_sqlite_folder(url: URL) -> None:
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


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
    """Apply pending migrations (synchronous: call it before the event loop, or in a thread).
    A database that cannot be reached is a one-line error naming it (password hidden)."""
    from alembic import command

    with unreachable_as_user_error(url or database_url()):
        command.upgrade(alembic_config(url), revision)


@contextmanager
def unreachable_as_user_error(url: str):
    """Connection failures (server down, wrong password, no such database) as a UserError."""
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
        raise UserError(f"cannot open the database {shown(url)}: {first_line(exc)}") from None
    except Exception as exc:  # asyncpg raises its own classes (InvalidPasswordError, InvalidCatalogNameError, ...)
        if type(exc).__module__.startswith("asyncpg"):
            raise UserError(f"cannot open the database {shown(url)}: {first_line(exc)}") from None
        raise


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(getattr(exc, 'orig', None) or exc).__name__}: {text[0] if text else ''}"


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def insert(session, table):
    """An INSERT that can say ON CONFLICT (SQLite and PostgreSQL both speak it, each through its
    own dialect): several bot processes may record the same channel, rating or opt-out at once,
    and a check-then-insert would fail one of them on the unique key."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(table)
