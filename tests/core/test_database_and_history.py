"""The schema comes from Alembic on a real SQLite file; history is per channel, survives a
restart, is labelled by speaker, and fits the token budget."""

import asyncio
import os
import sqlite3
import subprocess
import sys

import pytest


from core.context import fit_prompt, turns_from_history
from core.db.database import connect, downgrade, make_engine, upgrade
from core.db.history import History
from core.paths import PROJECT_ROOT
from core.prompt import Turn


def tables(path):
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("select name from sqlite_master where type='table'")}


def test_alembic_cli_honours_the_database_url_and_downgrades(tmp_path):
    path = tmp_path / "bot.db"
    env = {**os.environ, "INOSUKE_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        done = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        head = {"alembic_version", "channels", "messages", "ratings", "approvals", "opt_outs", "training_runs", "context_resets"}
        expected = head if args[0] == "upgrade" else {"alembic_version"}
        assert tables(path) == expected


def test_wal_mode_and_foreign_keys(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)

    async def pragmas():
        engine = make_engine(url)
        async with engine.connect() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        await engine.dispose()
        return journal, keys

    assert asyncio.run(pragmas()) == ("wal", 1)
    downgrade(url)
    assert tables(tmp_path / "bot.db") == {"alembic_version"}


def run_with_history(url, body):
    async def main():
        async with connect(url) as sessions:
            return await body(History(sessions))

    return asyncio.run(main())


def test_history_is_per_channel_survives_restart_and_reset(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)

    async def write(history):
        await history.add(10, 1, "Tanjiro", "Inosuke, dinner!", discord_id=111)
        await history.add(10, 0, "Inosuke", "TEMPURA!", by_bot=True, adapter_version="v0003")
        await history.add(20, 2, "Zenitsu", "Put a shirt on!")

    run_with_history(url, write)

    async def read(history):  # a new engine: as after a restart
        ten, twenty = await history.recent(10), await history.recent(20)
        await history.reset(10)
        await history.add(10, 1, "Tanjiro", "Good morning!")
        return ten, twenty, await history.recent(10)

    ten, twenty, after_reset = run_with_history(url, read)
    assert [(m.author_name, m.content, m.by_bot) for m in ten] == [("Tanjiro", "Inosuke, dinner!", False), ("Inosuke", "TEMPURA!", True)]
    assert [m.content for m in twenty] == ["Put a shirt on!"]
    assert [m.content for m in after_reset] == ["Good morning!"]
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("select adapter_version from messages where by_bot").fetchall() == [("v0003",)]
        assert db.execute("select count(*) from messages where channel_id = 10").fetchone() == (3,)  # reset deletes nothing


def test_multi_user_history_is_labelled_one_to_one_is_not(persona):
    from core.db.history import StoredMessage, now

    one = [StoredMessage(1, "Kanao", False, "hi", now()), StoredMessage(0, "Inosuke", True, "HAH!", now())]
    assert turns_from_history(one) == [Turn("hi"), Turn("HAH!", by_persona=True)]
    many = one + [StoredMessage(2, "Zenitsu", False, "eek", now())]
    assert turns_from_history(many)[0] == Turn("hi", speaker="Kanao")
    assert turns_from_history(many)[2] == Turn("eek", speaker="Zenitsu")


def test_context_keeps_the_newest_turns_within_the_token_budget(persona, tokenizer):
    turns = [Turn(f"message number {i} " + "blah " * 20, by_persona=i % 2 == 1) for i in range(30)]
    prompt, kept = fit_prompt(tokenizer, persona, turns, budget=600)
    assert 0 < kept < 30
    assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 600
    assert "message number 29" in prompt and f"message number {30 - kept} " in prompt and f"message number {29 - kept} " not in prompt
    assert prompt.startswith("<|im_start|>system\nYou are Inosuke Hashibira.")


def test_migrations_that_rebuild_a_table_keep_every_row(tmp_path):
    """SQLite batch migrations drop and recreate a table; with foreign keys on, that drop would
    cascade into messages and ratings. Upgrading and downgrading across 0004 keeps them all."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url, "0003")
    with sqlite3.connect(tmp_path / "bot.db") as db:  # the schema of 0003, written as that version's bot did
        db.execute("insert into channels (id, guild_id, name, enabled, created_at) values (10, 5, 'general', 0, '2026-01-01')")
        db.execute("insert into messages (channel_id, author_id, author_name, by_bot, content, created_at) "
                   "values (10, 1, 'Tanjiro', 0, 'Inosuke, dinner!', '2026-01-01 10:00')")
        db.execute("insert into messages (channel_id, discord_id, author_id, author_name, by_bot, content, created_at) "
                   "values (10, 77, 0, 'Inosuke', 1, 'TEMPURA!', '2026-01-01 10:01')")
        db.execute("insert into ratings (message_id, user_id, score, via, created_at, updated_at) values (2, 7, 5, 'button', '2026-01-01', '2026-01-01')")
    for step in (lambda: upgrade(url), lambda: downgrade(url, "0003"), lambda: upgrade(url)):
        step()
        with sqlite3.connect(tmp_path / "bot.db") as db:
            assert db.execute("select count(*) from messages").fetchone() == (2,)
            assert db.execute("select count(*) from ratings").fetchone() == (1,)


def test_the_schema_module_describes_what_the_migrations_build(tmp_path):
    """The one schema (core/db/schema.py) and Alembic's head agree: no column, index or table
    differs, and the rating score's CHECK holds in a database built from the schema module alone."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.exc import IntegrityError

    from core.db.schema import Base

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()

    fresh = create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    Base.metadata.create_all(fresh)
    with fresh.begin() as connection:
        connection.exec_driver_sql("insert into channels (id, name, created_at) values (1, '', '2026-01-01')")
        connection.exec_driver_sql("insert into messages (channel_id, author_id, author_name, by_bot, content, created_at) "
                                   "values (1, 0, 'Inosuke', 1, 'HAH!', '2026-01-01')")
    with pytest.raises(IntegrityError), fresh.begin() as connection:
        connection.exec_driver_sql("insert into ratings (message_id, user_id, score, via, created_at, updated_at) "
                                   "values (1, 7, 9, 'button', '2026-01-01', '2026-01-01')")
    fresh.dispose()
