"""Faults that must lose nothing and hang nothing, end to end: a database error gets the
in-character apology; shutdown stops taking messages, finishes or answers the ones under way
and stores only replies it posted; a reply to a message deleted meanwhile still goes out; a
display name with backslashes is text; double clicks store one rating. Real discord.py client,
emulator, real SQLite; a fake model (slow where time matters)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from bot.service.pipeline import APOLOGY, GOING_TO_SLEEP
from core.settings import DiscordSettings
from tests.discord_front.emulator import ENABLED, GENERAL, TANJIRO, TRAINING, ZENITSU

KANAO, GENYA = 203, 204


def test_a_storage_error_gets_the_apology_and_a_log_line(make_runtime, run_bot, fake_served, db_rows, caplog):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Hi!", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL)
        db_rows("alter table messages rename to messages_lost")  # the disk goes bad under the running bot
        await emulator.user_says(GENERAL, TANJIRO, "Are you there?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1, timeout=20)).content == APOLOGY

    with caplog.at_level(logging.ERROR):
        run_bot(runtime, body)
    assert "could not store a message in channel" in caplog.text


def test_shutdown_finishes_queued_replies_and_stores_only_what_it_posted(make_runtime, run_bot, fake_served_with, db_rows):
    runtime = make_runtime(fake_served_with(delay_s=0.4), max_batch=1)  # one at a time, 0.4 s each
    users = {TANJIRO: GENERAL, ZENITSU: TRAINING, KANAO: ENABLED, GENYA: GENERAL}

    async def body(emulator, client):
        emulator.users |= {KANAO: "Kanao", GENYA: "Genya"}
        for user, channel in users.items():
            await emulator.user_says(channel, user, "Quick, before you go!", mention_bot=True)
        await asyncio.sleep(0.3)  # all of them under way
        closing = asyncio.ensure_future(client.close())  # SIGTERM does this
        await asyncio.sleep(0.05)
        await emulator.user_says(GENERAL, TANJIRO, "One more!", mention_bot=True)  # too late: not taken
        await closing

    emulator = run_bot(runtime, body, DiscordSettings(enabled_channels=[ENABLED], shutdown_grace_s=30))
    assert len(emulator.posted) == 4 and all(p.content == "HAH! Lord Inosuke heard you!" for p in emulator.posted)
    replies = db_rows("select discord_id, sent from messages where by_bot")
    assert sorted(replies) == sorted((p.id, 1) for p in emulator.posted)  # every stored reply was posted, with its id
    assert db_rows("select count(*) from messages where content = 'One more!'") == [(0,)]


def test_shutdown_answers_what_it_cannot_finish_in_time(make_runtime, run_bot, fake_served_with, db_rows):
    runtime = make_runtime(fake_served_with(delay_s=1.0), max_batch=1)

    async def body(emulator, client):
        emulator.users |= {KANAO: "Kanao"}
        for user, channel in ((TANJIRO, GENERAL), (ZENITSU, TRAINING), (KANAO, ENABLED)):
            await emulator.user_says(channel, user, "Still there?", mention_bot=True)
        await asyncio.sleep(0.3)
        await client.close()

    emulator = run_bot(runtime, body, DiscordSettings(enabled_channels=[ENABLED], shutdown_grace_s=0.5))
    said = sorted(p.content for p in emulator.posted)
    assert len(said) == 3 and GOING_TO_SLEEP in said  # everyone gets an answer; some of them good night
    posted_replies = {p.id for p in emulator.posted if p.content != GOING_TO_SLEEP}
    assert {d for (d,) in db_rows("select discord_id from messages where by_bot")} == posted_replies
    assert db_rows("select count(*) from messages where by_bot and not sent") == [(0,)]


def test_a_reply_to_a_message_deleted_meanwhile_still_goes_out(make_runtime, run_bot, fake_served_with, db_rows):
    runtime = make_runtime(fake_served_with(delay_s=0.5))

    async def body(emulator, client):
        said = await emulator.user_says(GENERAL, TANJIRO, "Nevermind", mention_bot=True)
        await asyncio.sleep(0.2)
        await emulator.delete(said)  # while the reply is being generated
        await emulator.user_says(TRAINING, ZENITSU, "I'm still here", mention_bot=True)
        await emulator.wait_for_bot_message(TRAINING, timeout=20)

    emulator = run_bot(runtime, body)
    general = [p for p in emulator.posted if p.channel_id == GENERAL]
    assert len(general) == 1 and "message_reference" in general[0].payload  # asked to reply, but not to fail
    assert db_rows(f"select count(*) from messages where by_bot and channel_id = {GENERAL} and discord_id is not null") == [(1,)]


def test_display_names_with_backslashes_are_text(make_runtime, run_bot, fake_served):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, f"<@{KANAO}> and <@{ZENITSU}>, fight Inosuke!", mention_bot=True,
                                 mentions=[KANAO, ZENITSU])
        await emulator.wait_for_bot_message(GENERAL, timeout=20)

    def members(emulator):
        emulator.users |= {KANAO: "\\o/", ZENITSU: "Neo\\1"}

    run_bot(runtime, body, prepare=members)
    assert "@\\o/ and @Neo\\1, fight Inosuke!" in runtime.prompts[0]


def test_double_clicks_store_one_rating(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Rate me twice", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        up = emulator.buttons(reply)["👍"]
        for _ in range(3):  # impatient people click again before the first click is answered
            answers = await asyncio.gather(*(emulator.click(GENERAL, user, reply, up, timeout=15)
                                             for user in (TANJIRO, ZENITSU) for _ in range(4)))
            assert all("rated this reply" in a.content or "changed your rating" in a.content for a in answers)

    run_bot(runtime, body)
    assert sorted(db_rows("select user_id, score from ratings")) == [(TANJIRO, 5), (ZENITSU, 5)]
