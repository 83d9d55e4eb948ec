"""Ratings, approvals and opt-outs on a real database migrated by Alembic (revision 0002): a
SQLite file and a PostgreSQL database, each test on both."""

import asyncio

import pytest

from core.db.database import connect, downgrade, upgrade
from core.db.history import History
from core.db.ratings import THUMB_DOWN, THUMB_UP, NotRatable, Ratings

pytestmark = pytest.mark.each_database


def run(url, body):
    async def main():
        async with connect(url) as sessions:
            return await body(History(sessions), Ratings(sessions))

    return asyncio.run(main())


async def conversation(history):
    asked = await history.add(10, 7, "Kanao", "Who are you?", discord_id=501)
    reply = await history.add(10, 0, "Inosuke", "LORD INOSUKE!", by_bot=True, adapter_version="v0001")
    await history.set_discord_id(reply, 502)
    return asked, reply


def test_one_rating_per_user_per_reply_and_it_can_change(db_url):
    url = db_url

    async def body(history, ratings):
        asked, reply = await conversation(history)
        assert await ratings.reply_for_discord_message(502) == reply and await ratings.latest_reply(10) == reply
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


def test_approval_decisions_replace_each_other(db_url, db_rows):
    url = db_url

    async def body(history, ratings):
        _, reply = await conversation(history)
        await ratings.decide(reply, 99, approved=True)
        await ratings.decide(reply, 98, approved=False)

    run(url, body)
    assert db_rows("select approved, moderator_id from approvals") == [(False, 98)]


def test_forget_me_removes_messages_and_ratings_and_records_the_opt_out(db_url, db_rows):
    url = db_url

    async def body(history, ratings):
        _, reply = await conversation(history)
        await history.add(10, 8, "Aoi", "Hello!")
        await ratings.rate(reply, 7, THUMB_DOWN, via="button")
        await ratings.rate(reply, 8, THUMB_UP, via="button")
        removed = await ratings.forget_user(7)
        again = await ratings.forget_user(7)  # asked twice (two clicks, two processes): still one opt-out
        return removed, again, await ratings.opted_out(7), await ratings.opted_out(8), await ratings.summary(reply)

    removed, again, seven, eight, summary = run(url, body)
    assert removed == (1, 1) and again == (0, 0) and seven and not eight
    assert (summary.ratings, summary.thumbs_up) == (1, 1)  # Aoi's rating stays
    assert db_rows("select author_name from messages order by id") == [("Inosuke",), ("Aoi",)]
    assert db_rows("select user_id from opt_outs") == [(7,)]


def test_ratings_at_the_same_moment_keep_one_row_per_user(db_url, db_rows):
    """Many presses of the same buttons at once (one user double-clicking, or the same user in
    two bot processes) end as one rating per user, the last one written, and none fails."""

    async def body(history, ratings):
        _, reply = await conversation(history)
        presses = [ratings.rate(reply, 7 + n % 2, THUMB_UP if n % 3 else THUMB_DOWN, via="button") for n in range(12)]
        presses += [ratings.decide(reply, 99, approved=bool(n % 2)) for n in range(6)]
        return reply, await asyncio.gather(*presses)

    reply, _ = run(db_url, body)
    assert db_rows("select user_id, count(*) from ratings group by user_id order by user_id") == [(7, 1), (8, 1)]
    assert db_rows("select count(*) from approvals") == [(1,)]


def test_text_postgresql_cannot_hold_is_stored_readably(db_url, db_rows):
    """A NUL character (anyone can type one into a message, a name or a comment) is stored as
    U+FFFD on both databases, instead of PostgreSQL refusing the whole message."""

    async def body(history, ratings):
        await history.add(10, 7, "Kan\x00ao", "Who\x00are you?", channel_name="gen\x00eral")
        reply = await history.add(10, 0, "Inosuke", "LORD INOSUKE!", by_bot=True)
        await ratings.rate(reply, 7, 4, comment="lou\x00d")
        return await history.recent(10)

    recent = run(db_url, body)
    assert [(m.author_name, m.content) for m in recent][0] == ("Kan\ufffdao", "Who\ufffdare you?")
    assert db_rows("select name from channels") == [("gen\ufffderal",)]
    assert db_rows("select comment from ratings") == [("lou\ufffdd",)]


def test_revision_0002_downgrades_without_touching_history(db_url, db_rows, table_names):
    url = db_url
    run(url, lambda history, ratings: conversation(history))
    downgrade(url, "0001")
    assert table_names(url) == {"alembic_version", "channels", "messages"}
    assert db_rows("select count(*) from messages") == [(2,)]
    upgrade(url)
    assert {"ratings", "approvals", "opt_outs"} <= table_names(url)
