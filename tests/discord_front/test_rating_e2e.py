"""End to end, rating and the other commands: 👍/👎 buttons and /rate store ratings (one per
user per reply, changeable), moderators approve or reject (by permission or configured role,
by command or message context menu), /reset, /forget-me with its confirmation, /inosuke, and
the command sync. Real discord.py client, emulator over loopback, a real database (each test on
SQLite and on PostgreSQL); none of these assertions depends on the model's text, so the fake
language model answers."""

from __future__ import annotations

import pytest

from core.settings import DiscordSettings
from core.db.privacy import Privacy
from bot.discord_front.commands import BAD_MESSAGE_REF, FORGET_ME_FAILED, FORGETTING, NOT_A_MODERATOR, NO_REPLY_YET, RESET_DONE
from tests.discord_front.emulator import GENERAL, GUILD_ID, MOD_ROLE, TANJIRO, TRAINING, ZENITSU

pytestmark = pytest.mark.each_database

COMMANDS = {"rate", "approve", "reset", "forget-me", "inosuke", "Approve for training", "Reject for training"}


def ratings(db_rows):
    return db_rows("select message_id, user_id, score, comment, via from ratings order by user_id")


def test_buttons_and_rate_store_one_changeable_rating_per_user(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        nothing = await emulator.slash(GENERAL, TANJIRO, "rate", {"score": 4})
        assert nothing.ephemeral and nothing.content == NO_REPLY_YET

        await emulator.user_says(GENERAL, TANJIRO, "Show me your best move!", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        buttons = emulator.buttons(reply)
        [reply_id] = {int(custom_id.rsplit(":", 1)[1]) for custom_id in buttons.values()}
        assert buttons == {"👍": f"inosuke:rate:up:{reply_id}", "👎": f"inosuke:rate:down:{reply_id}",
                           "🔄": f"inosuke:swipe:{reply_id}"}

        thanks = await emulator.click(GENERAL, TANJIRO, reply, buttons["👍"])
        assert thanks.ephemeral and "You rated this reply 👍" in thanks.content
        await emulator.click(GENERAL, ZENITSU, reply, buttons["👎"])
        changed = await emulator.click(GENERAL, ZENITSU, reply, buttons["👍"])
        assert "changed your rating to 👍" in changed.content

        # /rate defaults to the latest reply and replaces Tanjiro's button rating.
        rated = await emulator.slash(GENERAL, TANJIRO, "rate", {"score": 2, "comment": "too polite for Inosuke"})
        assert rated.ephemeral and rated.content.startswith("Changed your rating to 2/5")
        bad = await emulator.slash(GENERAL, ZENITSU, "rate", {"score": 1, "message": "yesterday's one"})
        assert bad.content == BAD_MESSAGE_REF
        by_link = await emulator.slash(GENERAL, ZENITSU, "rate", {
            "score": 1, "message": f"https://discord.com/channels/{GUILD_ID}/{GENERAL}/{reply['id']}"})
        assert by_link.content.startswith("Changed your rating to 1/5")

    emulator = run_bot(runtime, body)
    assert COMMANDS <= {c["name"] for c in emulator.synced["global"]}
    [(reply_id,)] = db_rows("select id from messages where by_bot")
    assert ratings(db_rows) == [(reply_id, TANJIRO, 2, "too polite for Inosuke", "command"),
                                (reply_id, ZENITSU, 1, None, "command")]


def test_moderators_approve_or_reject_and_reset_and_status(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)
    settings = DiscordSettings(moderator_roles=[MOD_ROLE], command_guild=GUILD_ID)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "The secret word is wisteria.", mention_bot=True)
        first = (await emulator.wait_for_bot_message(GENERAL)).message
        await emulator.user_says(GENERAL, TANJIRO, "Again!", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=1)

        refused = await emulator.slash(GENERAL, ZENITSU, "approve", {})
        assert refused.content == NOT_A_MODERATOR
        refused = await emulator.context_menu(GENERAL, ZENITSU, "Approve for training", first)
        assert refused.content == NOT_A_MODERATOR

        # Manage Messages approves the latest reply; the configured role rejects the first one
        # from its context menu.
        approved = await emulator.slash(GENERAL, TANJIRO, "approve", {}, moderator=True)
        assert approved.ephemeral and approved.content.startswith("Approved for training")
        rejected = await emulator.context_menu(GENERAL, ZENITSU, "Reject for training", first, roles=[MOD_ROLE])
        assert rejected.content.startswith("Rejected for training")

        assert (await emulator.slash(GENERAL, ZENITSU, "reset", {})).content == NOT_A_MODERATOR
        reset = await emulator.slash(GENERAL, TANJIRO, "reset", {}, moderator=True)
        assert reset.content == RESET_DONE and not reset.ephemeral  # everyone in the channel sees it
        await emulator.user_says(GENERAL, TANJIRO, "What was the secret word?", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=2)

        status = await emulator.slash(TRAINING, ZENITSU, "inosuke", {})
        assert status.ephemeral and "Adapter: v0007" in status.content
        assert "Queue: 0 waiting" in status.content and "Uptime: 0:00:" in status.content

    emulator = run_bot(runtime, body, settings)
    assert set(emulator.synced) == {str(GUILD_ID)} and COMMANDS <= {c["name"] for c in emulator.synced[str(GUILD_ID)]}
    first_id, second_id = [r[0] for r in db_rows("select id from messages where by_bot order by id")][:2]
    assert db_rows("select message_id, approved, moderator_id from approvals order by message_id") == [
        (first_id, False, ZENITSU), (second_id, True, TANJIRO)]
    assert "wisteria" in runtime.prompts[1] and "wisteria" not in runtime.prompts[2]
    assert db_rows("select count(*) from messages where content like '%wisteria%'") == [(1,)]  # hidden, not deleted


def test_forget_me_that_fails_after_its_acknowledgement_says_so(make_runtime, run_bot, fake_served, db_rows, monkeypatch):
    """/forget-me answers "Forgetting you..." at once; if the deletion then fails (a database
    fault), the user is told, not left waiting on that line, and nothing is half deleted."""
    runtime = make_runtime(fake_served)

    async def broken(privacy, user_id):
        raise OSError("disk I/O error")

    monkeypatch.setattr(Privacy, "forget_user", broken)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "I am Tanjiro Kamado.", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL)
        question = await emulator.slash(GENERAL, TANJIRO, "forget-me", {})
        acknowledged = await emulator.click(GENERAL, TANJIRO, question.message, emulator.buttons(question.message)["Yes, forget me"])
        assert (await emulator.edited_from(acknowledged.message, FORGETTING))["content"] == FORGET_ME_FAILED

    run_bot(runtime, body)
    assert db_rows(f"select count(*) from messages where author_id = {TANJIRO}") == [(1,)]


def test_forget_me_deletes_only_after_confirmation(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "I am Tanjiro Kamado.", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        await emulator.user_says(GENERAL, ZENITSU, "And I am Zenitsu!", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=1)
        for user in (TANJIRO, ZENITSU):
            await emulator.click(GENERAL, user, reply, emulator.buttons(reply)["👍"])

        question = await emulator.slash(GENERAL, TANJIRO, "forget-me", {})
        assert question.ephemeral and set(emulator.buttons(question.message)) == {"Yes, forget me", "Cancel"}
        cancelled = await emulator.click(GENERAL, TANJIRO, question.message, emulator.buttons(question.message)["Cancel"])
        assert cancelled.type == 7 and cancelled.content.startswith("Nothing deleted")
        assert db_rows(f"select count(*) from messages where author_id = {TANJIRO}") == [(1,)]

        question = await emulator.slash(GENERAL, TANJIRO, "forget-me", {})
        acknowledged = await emulator.click(GENERAL, TANJIRO, question.message, emulator.buttons(question.message)["Yes, forget me"])
        assert acknowledged.type == 7 and acknowledged.content == FORGETTING
        done = await emulator.edited_from(acknowledged.message, FORGETTING)
        assert done["content"].startswith(
            "Done. Deleted 1 message(s) of yours, 1 repl(ies) of mine to you and 1 rating(s) of yours")
        assert done["components"] == []  # the buttons are gone once answered

    run_bot(runtime, body)
    assert db_rows(f"select count(*) from messages where author_id = {TANJIRO}") == [(0,)]
    assert ratings(db_rows) == []  # Zenitsu's 👍 went with the reply to Tanjiro
    assert db_rows("select user_id from opt_outs") == [(TANJIRO,)]
    assert db_rows("select count(*) from messages where content like '%Zenitsu%'") == [(1,)]  # others keep theirs
    assert db_rows("select count(*) from messages where by_bot") == [(1,)]  # and the reply to them
