"""Shards end to end: the bot on discord.py's AutoShardedClient (`discord.shard_count: auto`), two
shards with their guilds split between them as Discord splits them, every reply, rating and
command in both guilds, on SQLite and on PostgreSQL. The fake language model answers: nothing
here depends on its text."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord_front.commands import FORGETTING, RESET_DONE
from core.settings import DiscordSettings
from tests.discord_front.emulator import GENERAL, GUILD_ID, MEMBERS, SECOND_GUILD, TANJIRO, ZENITSU, shard_of

DOJO = 111  # a channel of the second guild
WORLD = {"channels": {GENERAL: "general", DOJO: "dojo"}, "users": dict(MEMBERS),
         "guilds": {GUILD_ID: "Butterfly Mansion", SECOND_GUILD: "Mountain Dojo"}, "channel_guilds": {DOJO: SECOND_GUILD},
         "recommended_shards": 2}


@pytest.mark.each_database
def test_two_shards_split_the_guilds_and_answer_everything_in_both(make_runtime, run_bot, fake_served, db_rows):
    assert {shard_of(GUILD_ID, 2), shard_of(SECOND_GUILD, 2)} == {0, 1}
    runtime = make_runtime(fake_served)
    replies, status = {}, {}

    async def body(emulator, client):
        assert client.shard_count == 2 and sorted(client.shards) == [0, 1]
        assert {s.shard: s.guilds for s in emulator.sessions} == {(shard_of(GUILD_ID, 2), 2): [GUILD_ID],
                                                                  (shard_of(SECOND_GUILD, 2), 2): [SECOND_GUILD]}
        for channel in (GENERAL, DOJO):
            await emulator.user_says(channel, TANJIRO, f"The secret word in {channel} is wisteria.", mention_bot=True)
            reply = (await emulator.wait_for_bot_message(channel)).message
            replies[channel] = reply
            thanks = await emulator.click(channel, ZENITSU, reply, emulator.buttons(reply)["👍"])
            assert "You rated this reply 👍" in thanks.content
            rated = await emulator.slash(channel, TANJIRO, "rate", {"score": 2, "comment": f"meh in {channel}"})
            assert rated.content.startswith("Rated 2/5")
            approved = await emulator.slash(channel, TANJIRO, "approve", {}, moderator=True)
            assert approved.content.startswith("Approved for training")
            status[channel] = (await emulator.slash(channel, ZENITSU, "inosuke", {})).content
            assert (await emulator.slash(channel, TANJIRO, "reset", {}, moderator=True)).content == RESET_DONE
            await emulator.user_says(channel, TANJIRO, "What was the secret word?", mention_bot=True)
            await emulator.wait_for_bot_message(channel, after=1)

        question = await emulator.slash(DOJO, ZENITSU, "forget-me", {})
        acknowledged = await emulator.click(DOJO, ZENITSU, question.message, emulator.buttons(question.message)["Yes, forget me"])
        done = await emulator.edited_from(acknowledged.message, FORGETTING)
        assert done["content"].startswith("Done. Deleted 0 message(s) of yours, 0 repl(ies) of mine to you and 2 rating(s) of yours")  # his 👍 in both guilds

        # Every event reached the one session whose shard owns its guild.
        for session in emulator.sessions:
            guilds = {int(data["guild_id"]) for _, kind, data in session.events if "guild_id" in data}
            assert guilds == set(session.guilds), (session.shard, guilds)

    emulator = run_bot(runtime, body, DiscordSettings(shard_count="auto"), **WORLD)
    assert emulator.identifies == 2 and list(emulator.synced) == ["global"]
    assert status[GENERAL].endswith(f"Shard: {shard_of(GUILD_ID, 2)} of 2")
    assert status[DOJO].endswith(f"Shard: {shard_of(SECOND_GUILD, 2)} of 2")

    assert db_rows("select id, guild_id, name from channels order by id") == [(GENERAL, GUILD_ID, "general"),
                                                                              (DOJO, SECOND_GUILD, "dojo")]
    stored = db_rows("select channel_id, count(*) from messages where by_bot group by channel_id order by channel_id")
    assert stored == [(GENERAL, 2), (DOJO, 2)]
    first = {channel: db_rows(f"select min(id) from messages where by_bot and channel_id = {channel}")[0][0] for channel in (GENERAL, DOJO)}
    assert db_rows("select message_id, user_id, score, comment from ratings order by message_id") == [
        (first[GENERAL], TANJIRO, 2, f"meh in {GENERAL}"), (first[DOJO], TANJIRO, 2, f"meh in {DOJO}")]
    assert db_rows("select message_id, approved from approvals order by message_id") == [(first[GENERAL], True), (first[DOJO], True)]
    assert db_rows("select user_id from opt_outs") == [(ZENITSU,)]
    # /reset worked per guild: the question after it saw no secret word, in either shard.
    asked_after_reset = [p for p in runtime.prompts if "What was the secret word?" in p]
    assert len(asked_after_reset) == 2 and not any("wisteria" in p for p in asked_after_reset)


def test_shard_settings_are_checked_before_connecting(tmp_path):
    """Mistakes discord.py would only report after connecting are one line naming the key."""
    from core.errors import UserError
    from core.settings import load_settings

    config = tmp_path / "bot.yaml"
    for discord, problem in [("shard_ids: [0]", "discord.shard_ids: needs shard_count"),
                             ("shard_count: 2\n  shard_ids: [0, 2]", "discord.shard_ids: shard 2 does not exist"),
                             ("shard_count: 0", "discord.shard_count: must be at least 1"),
                             ("shard_count: lots", "discord.shard_count: 'lots' is not one of 'auto'")]:
        config.write_text(f"discord:\n  {discord}\n")
        with pytest.raises(UserError, match=problem):
            load_settings(config)
    config.write_text("discord:\n  shard_count: 4\n  shard_ids: [2, 3]\n")
    assert load_settings(config).discord.shard_ids == [2, 3]


def test_the_default_is_one_connection_without_shards(make_runtime, fake_served):
    import discord

    from bot.discord_front.client import InosukeBot, ShardedInosukeBot, make_client

    runtime = make_runtime(fake_served)
    plain = make_client(runtime, DiscordSettings())
    assert type(plain) is InosukeBot and not isinstance(plain, discord.AutoShardedClient) and plain.shard_count is None
    sharded = make_client(runtime, DiscordSettings(shard_count=4, shard_ids=[2, 3]))
    assert isinstance(sharded, ShardedInosukeBot) and isinstance(sharded, discord.AutoShardedClient)
    assert (sharded.shard_count, sharded.shard_ids, sharded.runs_first_shard) == (4, [2, 3], False)
    assert plain.runs_first_shard and make_client(runtime, DiscordSettings(shard_count="auto")).runs_first_shard
    asyncio.run(runtime.close())


def test_the_command_line_picks_this_processes_shards():
    from bot.__main__ import parse_args, settings_from
    from core.errors import UserError

    settings = settings_from(parse_args(["--shard-count", "8", "--shard-ids", "0-2,6"]))
    assert (settings.discord.shard_count, settings.discord.shard_ids) == (8, [0, 1, 2, 6])
    assert settings_from(parse_args(["--shard-count", "auto"])).discord.shard_count == "auto"
    with pytest.raises(UserError, match="--shard-ids: shard 8 does not exist"):
        settings_from(parse_args(["--shard-count", "8", "--shard-ids", "7-8"]))
