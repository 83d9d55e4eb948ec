"""Ratings, approvals and opt-outs on a real SQLite file migrated by Alembic (revision 0002)."""

import asyncio
import sqlite3

import pytest

from core.db.database import connect, downgrade, upgrade
from core.db.history import History
from core.db.privacy import Forgotten, Privacy
from core.db.ratings import THUMB_DOWN, THUMB_UP, NotRatable, Ratings, ReplyRef


@pytest.fixture
def db(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    return url, tmp_path / "bot.db"


def run(url, body):
    async def main():
        async with connect(url) as sessions:
            return await body(History(sessions), Ratings(sessions))

    return asyncio.run(main())


async def conversation(history):
    asked = await history.add(10, 7, "Kanao", "Who are you?", discord_id=501)
    reply = await history.add(10, 0, "Inosuke", "LORD INOSUKE!", by_bot=True, adapter_version="v0001", answers_id=asked)
    await history.mark_sent(reply, 502)
    return asked, reply


def test_one_rating_per_user_per_reply_and_it_can_change(db):
    url, _ = db

    async def body(history, ratings):
        asked, reply = await conversation(history)
        assert await ratings.find_reply(502, guild_id=None, channel_id=10) == ReplyRef(reply, 10, None)
        assert await ratings.latest_reply(10) == reply
        assert await ratings.rate(reply, 7, THUMB_UP, via="button") is False
        assert await ratings.rate(reply, 8, THUMB_UP, via="button") is False
        assert await ratings.rate(reply, 7, 2, comment="not loud enough") is True  # changed, not added
        summary = await ratings.summary(reply)
        with pytest.raises(NotRatable):
            await ratings.rate(asked, 7, 5)  # only the bot's replies are rated
        with pytest.raises(ValueError):
            await ratings.rate(reply, 7, 6)
        return summary

    summary = run(url, body)
    assert (summary.ratings, summary.thumbs_up, summary.thumbs_down, summary.mean_score) == (2, 1, 1, 3.5)


def test_approval_decisions_replace_each_other(db):
    url, path = db

    async def body(history, ratings):
        _, reply = await conversation(history)
        await ratings.decide(reply, 99, approved=True)
        await ratings.decide(reply, 98, approved=False)

    run(url, body)
    with sqlite3.connect(path) as connection:
        assert connection.execute("select approved, moderator_id from approvals").fetchall() == [(0, 98)]


def test_forget_me_removes_messages_replies_to_them_and_ratings_and_records_the_opt_out(db):
    url, path = db

    async def body(history, ratings):
        _, reply = await conversation(history)
        hello = await history.add(10, 8, "Aoi", "Hello!")
        to_aoi = await history.add(10, 0, "Inosuke", "WHO ARE YOU?", by_bot=True, answers_id=hello)
        await ratings.rate(reply, 7, THUMB_DOWN, via="button")
        await ratings.rate(reply, 8, THUMB_UP, via="button")
        await ratings.rate(to_aoi, 7, THUMB_UP, via="button")
        await ratings.rate(to_aoi, 8, THUMB_UP, via="button")
        await ratings.decide(to_aoi, 7, approved=True)  # Kanao moderates too
        removed = await Privacy(history.sessions).forget_user(7)
        return removed, await ratings.opted_out(7), await ratings.opted_out(8), await ratings.summary(to_aoi), to_aoi

    removed, seven, eight, summary, to_aoi = run(url, body)
    assert removed == Forgotten(messages=1, replies=1, ratings=2, approvals=1, touched_replies={2, to_aoi})
    assert seven and not eight
    assert (summary.ratings, summary.thumbs_up) == (1, 1)  # Aoi's rating stays
    with sqlite3.connect(path) as connection:
        assert connection.execute("select author_name, content from messages order by id").fetchall() == [
            ("Aoi", "Hello!"), ("Inosuke", "WHO ARE YOU?")]
        assert connection.execute("select message_id, approved, moderator_id from approvals").fetchall() == [(to_aoi, 1, None)]


def test_revision_0002_downgrades_without_touching_history(db):
    url, path = db
    run(url, lambda history, ratings: conversation(history))
    downgrade(url, "0001")
    with sqlite3.connect(path) as connection:
        tables = {r[0] for r in connection.execute("select name from sqlite_master where type='table'")}
        assert tables == {"alembic_version", "channels", "messages"}
        assert connection.execute("select count(*) from messages").fetchone() == (2,)
    upgrade(url)
    with sqlite3.connect(path) as connection:
        assert {"ratings", "approvals", "opt_outs"} <= {r[0] for r in connection.execute("select name from sqlite_master")}
