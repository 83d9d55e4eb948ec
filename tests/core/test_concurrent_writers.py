"""Two bot processes writing to one database at the same moment lose none of their writes:
real processes (tests/core/concurrent_writer.py) through the bot's own stores, into channels
neither has seen before, rating the same replies. On PostgreSQL, the database for several
processes; on SQLite too (WAL and a busy timeout: one file, several writers, slower)."""

import asyncio
import subprocess
import sys

import pytest

from core.db.database import connect
from core.db.history import History
from core.paths import PROJECT_ROOT
from tests.core.concurrent_writer import CHANNELS, OPTED_OUT_USER, SHARED_REPLY_CHANNEL

WRITERS, MESSAGES = 2, 60


async def seed(url: str) -> None:
    async with connect(url) as sessions:
        history = History(sessions)
        await history.add(SHARED_REPLY_CHANNEL, 7, "Tanjiro", "Rate this!")
        await history.add(SHARED_REPLY_CHANNEL, 0, "Inosuke", "HAH!", by_bot=True)


@pytest.mark.each_database
def test_two_processes_lose_none_of_their_writes(db_url, db_rows, tmp_path):
    asyncio.run(seed(db_url))
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-m", "tests.core.concurrent_writer", db_url, str(w), str(MESSAGES), str(go)],
                                cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for w in range(1, WRITERS + 1)]
    go.touch()
    for writer in writers:
        output, _ = writer.communicate(timeout=240)
        assert writer.returncode == 0, output

    channels = ",".join(map(str, CHANNELS))
    stored = db_rows(f"select content from messages where channel_id in ({channels})")
    expected = {f"w{w} {kind} {n}" for w in range(1, WRITERS + 1) for n in range(MESSAGES) for kind in ("message", "reply")}
    assert len(stored) == len(expected) and {c for (c,) in stored} == expected
    assert db_rows(f"select count(*) from channels where id in ({channels})") == [(len(CHANNELS),)]
    replies = WRITERS * MESSAGES
    assert db_rows("select count(*), count(distinct message_id) from ratings where user_id = 8") == [(replies, replies)]
    assert db_rows("select count(*) from approvals") == [(replies,)]
    shared = db_rows(f"select id from messages where channel_id = {SHARED_REPLY_CHANNEL} and by_bot")[0][0]
    assert db_rows(f"select count(*) from ratings where message_id = {shared}") == [(1,)]  # one user, one rating
    assert db_rows(f"select count(*) from opt_outs where user_id = {OPTED_OUT_USER}") == [(1,)]
