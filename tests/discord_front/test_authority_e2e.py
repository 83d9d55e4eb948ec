"""Who may put data into training, end to end: a reply named by link is found only in the guild
where the command runs, rights are checked in the reply's own channel, rating ids are trusted
only on the bot's own messages, and the bot pings no one but the person it replies to. Real
discord.py client, emulator over loopback (two guilds, channel permission overwrites), real
SQLite; the fake model answers (no assertion depends on its text)."""

from __future__ import annotations

from bot.discord_front.commands import NOT_A_MODERATOR_THERE
from bot.discord_front.rating import GONE
from tests.discord_front.emulator import (ELSEWHERE, GENERAL, GUILD_ID, MANAGE_MESSAGES, OTHER_BOT, OTHER_GUILD,
                                          TANJIRO, TRAINING, VIEW_CHANNEL, ZENITSU)

KANAO = 203  # a member who cannot see #training


def member(user: int, allow: int = 0, deny: int = 0) -> dict:
    return {"id": str(user), "type": 1, "allow": str(allow), "deny": str(deny)}


def link(guild: int, channel: int, message: dict) -> str:
    return f"https://discord.com/channels/{guild}/{channel}/{message['id']}"


def test_replies_are_found_only_in_their_guild_and_rights_are_checked_in_their_channel(make_runtime, run_bot, fake_served,
                                                                                      db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        in_training = (await emulator.user_says(TRAINING, TANJIRO, "Train with me!", mention_bot=True))
        training_reply = (await emulator.wait_for_bot_message(TRAINING)).message
        await emulator.user_says(ELSEWHERE, ZENITSU, "Hello from another server", mention_bot=True)
        elsewhere_reply = (await emulator.wait_for_bot_message(ELSEWHERE)).message
        assert in_training and elsewhere_reply

        # Zenitsu moderates #general (Manage Messages there) and may read #training, but not moderate it.
        as_general_mod = {"moderator": True, "timeout": 10}
        refused = await emulator.slash(GENERAL, ZENITSU, "approve", {"message": link(GUILD_ID, TRAINING, training_reply)},
                                       **as_general_mod)
        assert refused.content == NOT_A_MODERATOR_THERE
        # A reply in another guild is not found from this one, for approving or rating.
        for command, options in (("approve", {}), ("rate", {"score": 5})):
            other = await emulator.slash(GENERAL, ZENITSU, command, {**options, "message": link(OTHER_GUILD, ELSEWHERE, elsewhere_reply)},
                                         **as_general_mod)
            assert other.content == GONE, command
        # Kanao cannot read #training: its replies do not exist for her.
        hidden = await emulator.slash(GENERAL, KANAO, "rate", {"score": 1, "message": training_reply["id"]}, timeout=10)
        assert hidden.content == GONE

        # Tanjiro moderates #training: from #general his right there counts, and he may rate it.
        approved = await emulator.slash(GENERAL, TANJIRO, "approve", {"message": link(GUILD_ID, TRAINING, training_reply)}, timeout=10)
        assert approved.content.startswith("Approved for training")
        rated = await emulator.slash(GENERAL, TANJIRO, "rate", {"score": 5, "message": training_reply["id"]}, timeout=10)
        assert rated.content.startswith("Rated 5/5")

    def permissions(emulator):
        emulator.overwrites[GENERAL] = [member(ZENITSU, allow=MANAGE_MESSAGES)]
        emulator.overwrites[TRAINING] = [{"id": str(GUILD_ID), "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)},
                                         member(TANJIRO, allow=VIEW_CHANNEL | MANAGE_MESSAGES), member(ZENITSU, allow=VIEW_CHANNEL)]

    run_bot(runtime, body, prepare=permissions)
    [(training_id,)] = db_rows(f"select id from messages where by_bot and channel_id = {TRAINING}")
    assert db_rows("select message_id, moderator_id from approvals") == [(training_id, TANJIRO)]
    assert db_rows("select message_id, user_id from ratings") == [(training_id, TANJIRO)]


def test_rating_ids_are_trusted_only_on_the_bots_own_messages(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Rate me!", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        up = emulator.buttons(reply)["👍"]
        # Another bot posts a message carrying the same rating ids in its own buttons.
        forged = await emulator.user_says(GENERAL, OTHER_BOT, "click me", bot=True)
        forged["components"] = reply["components"]
        menu = await emulator.context_menu(GENERAL, ZENITSU, "Approve for training", forged, moderator=True, timeout=10)
        assert menu.content == GONE
        clicked = await emulator.click(GENERAL, ZENITSU, forged, up, timeout=10)
        assert clicked.content == GONE
        # On the bot's own message the same id counts.
        assert "You rated this reply" in (await emulator.click(GENERAL, ZENITSU, reply, up, timeout=10)).content

    run_bot(runtime, body)
    assert db_rows("select count(*) from approvals") == [(0,)]
    assert db_rows("select user_id, score from ratings") == [(ZENITSU, 5)]


def test_replies_ping_only_the_person_replied_to(make_runtime, run_bot, fake_served_with):
    runtime = make_runtime(fake_served_with(reply=f"<@{ZENITSU}> <@&{GUILD_ID}> @everyone come fight me!"))

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Tell Zenitsu to fight you", mention_bot=True)
        posted = await emulator.wait_for_bot_message(GENERAL)
        assert f"<@{ZENITSU}>" in posted.content  # the text is kept ...
        assert posted.payload["allowed_mentions"] == {"parse": [], "replied_user": True}  # ... and pings no one but Tanjiro

    run_bot(runtime, body)
