"""The database under concurrent writers, on real SQLite files migrated by Alembic: no write is
lost to another process or to "database is locked"; ratings and approvals are upserts; replies
are found only where the command runs; revision 0005 backfills and downgrades keeping data."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time

from core.db import database
from core.db.database import connect, downgrade, upgrade
from core.db.history import History
from core.db.ratings import Ratings, ReplyRef
from core.paths import PROJECT_ROOT

WRITER = """
import asyncio, sys, time
from core.db.database import connect
from core.db.history import History

url, user, count, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

async def main():
    async with connect(url) as sessions:
        history = History(sessions)
        while time.time() < start:
            await asyncio.sleep(0.001)
        for n in range(count):  # both writers meet every channel for the first time together
            await history.add(5000 + n, user, f"user{user}", f"message {n}", guild_id=1, channel_name=f"c{n}")

asyncio.run(main())
"""


def test_two_writer_processes_lose_no_message(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    start = time.time() + 3  # both processes are up and connected by then
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(user), "300", str(start)], cwd=PROJECT_ROOT,
                                stderr=subprocess.PIPE, text=True) for user in (1, 2)]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("select count(*) from messages").fetchone() == (600,)
        assert db.execute("select count(*) from channels").fetchone() == (300,)


def test_a_write_waits_out_another_writer_holding_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 100)  # SQLite gives up after 0.1 s; the bot must not
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    holding = threading.Event()

    def other_writer():  # e.g. a second process, or an operator's sqlite3 shell, in a long transaction
        with sqlite3.connect(tmp_path / "bot.db", isolation_level=None) as db:
            db.execute("begin immediate")
            holding.set()
            time.sleep(1.5)
            db.execute("commit")

    async def main():
        async with connect(url) as sessions:
            thread = threading.Thread(target=other_writer)
            thread.start()
            holding.wait()
            stored = await History(sessions).add(1, 7, "Kanao", "Still stored")
            thread.join()
            return stored

    assert asyncio.run(main()) == 1


def test_concurrent_ratings_and_decisions_are_upserts(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)

    async def main():
        async with connect(url) as sessions:
            history, ratings = History(sessions), Ratings(sessions)
            asked = await history.add(1, 7, "Kanao", "Rate this")
            reply = await history.add(1, 0, "Inosuke", "HAH!", by_bot=True, answers_id=asked)
            changed = await asyncio.gather(*(ratings.rate(reply, user, 5, via="button") for user in (7, 8) for _ in range(10)))
            await asyncio.gather(*(ratings.decide(reply, 9, approved=n % 2 == 0) for n in range(10)))
            return changed

    changed = asyncio.run(main())
    assert changed.count(False) >= 2  # each user's first click stored a rating; the rest changed it
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert sorted(db.execute("select user_id, score from ratings").fetchall()) == [(7, 5), (8, 5)]
        assert db.execute("select count(*) from approvals").fetchone() == (1,)


def test_a_reply_is_found_only_in_its_guild_or_its_dm(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)

    async def main():
        async with connect(url) as sessions:
            history, ratings = History(sessions), Ratings(sessions)
            replies = {}
            for channel, guild in ((10, 1), (20, 2), (30, None)):  # two servers and a DM
                asked = await history.add(channel, 7, "Kanao", "Hi", guild_id=guild)
                replies[channel] = await history.add(channel, 0, "Inosuke", "HAH!", by_bot=True, answers_id=asked, sent=False)
                await history.mark_sent(replies[channel], 1000 + channel)
            found = {}
            for where in ((1, 11), (2, 11), (None, 30), (None, 31)):
                guild, channel = where
                found[where] = [await ratings.find_reply(1000 + c, guild_id=guild, channel_id=channel) for c in (10, 20, 30)]
            return replies, found

    replies, found = asyncio.run(main())
    assert found[(1, 11)] == [ReplyRef(replies[10], 10, 1), None, None]  # another channel of the same server: found
    assert found[(2, 11)] == [None, ReplyRef(replies[20], 20, 2), None]
    assert found[(None, 30)] == [None, None, ReplyRef(replies[30], 30, None)]  # a DM: only itself
    assert found[(None, 31)] == [None, None, None]


def test_revision_0005_backfills_and_downgrades_keeping_data(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url, "0004")
    rows = [  # channel, discord id, author, by_bot, content: written as the bot of revision 0004 did
        (10, 1, 7, 0, "question"), (10, 2, 0, 1, "answer"),  # an answered question
        (10, 3, 0, 1, "a second line of the bot"),  # follows a bot line: unlinked
        (10, None, 0, 1, "stored, never posted"), (30, None, 0, 1, "a console reply")]
    with sqlite3.connect(tmp_path / "bot.db") as db:
        db.execute("insert into channels (id, guild_id, name, context_reset_at, created_at) values (10, 5, 'general', '2026-01-02', '2026-01-01')")
        db.execute("insert into channels (id, guild_id, name, created_at) values (30, null, '', '2026-01-01')")
        for channel, discord_id, author, by_bot, content in rows:
            db.execute("insert into messages (channel_id, discord_id, author_id, author_name, by_bot, content, created_at) "
                       "values (?, ?, ?, 'x', ?, ?, '2026-01-01')", (channel, discord_id, author, by_bot, content))
        db.execute("insert into approvals (message_id, approved, moderator_id, decided_at) values (2, 1, 99, '2026-01-01')")
    upgrade(url)
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("select content, answers_id, sent from messages order by id").fetchall() == [
            ("question", None, 1), ("answer", 1, 1), ("a second line of the bot", None, 1),
            ("stored, never posted", None, 0), ("a console reply", None, 1)]
        assert db.execute("select channel_id, reset_at from context_resets").fetchall() == [(10, "2026-01-02")]
        db.execute("update approvals set moderator_id = null")  # a moderator used /forget-me
    downgrade(url, "0004")
    with sqlite3.connect(tmp_path / "bot.db") as db:
        assert db.execute("select count(*) from messages").fetchone() == (5,)
        assert db.execute("select message_id, moderator_id from approvals").fetchall() == [(2, 0)]
        assert db.execute("select context_reset_at from channels where id = 10").fetchone() == ("2026-01-02",)
    upgrade(url)  # and up again
