"""Fair use of the model, end to end: input limited in the served model's tokens, a busy channel
told to wait its turn, one "slow down" per rate-limit window, and nothing answered (or stored)
for messages with no text. Real discord.py client, emulator, real SQLite and tokenizer; the
fake model answers."""

from __future__ import annotations

import asyncio

from bot.discord_front.rate_limit import SLOW_DOWN
from bot.service.pipeline import TOO_LONG, WAIT_YOUR_TURN
from core.settings import ChatSettings, DiscordSettings
from tests.discord_front.emulator import ENABLED, GENERAL, TANJIRO, TRAINING, ZENITSU


def test_input_is_limited_in_tokens_not_characters(make_runtime, run_bot, fake_served, db_rows, tokenizer):
    runtime = make_runtime(fake_served)
    flood = "鬼滅の刃猪之助🐗" * 150  # 1,350 characters: under the character limit, thousands of tokens
    assert len(flood) < ChatSettings().max_input_chars
    assert len(tokenizer(flood, add_special_tokens=False)["input_ids"]) > 3 * ChatSettings().max_input_tokens

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, flood, mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL)).content == TOO_LONG
        await emulator.user_says(GENERAL, TANJIRO, "鬼滅の刃! short now", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=1)

    run_bot(runtime, body)
    assert len(runtime.prompts) == 1 and flood not in runtime.prompts[0]  # the flood never reached the model ...
    assert db_rows(f"select count(*) from messages where content = '{flood}'") == [(1,)]  # ... but was kept


def test_a_busy_channel_is_told_to_wait_its_turn(make_runtime, run_bot, fake_served_with):
    runtime = make_runtime(fake_served_with(delay_s=0.3), chat=ChatSettings(max_channel_queue=3))
    crowd = list(range(300, 320))  # 20 people at once in one channel

    async def body(emulator, client):
        for user in crowd:
            emulator.users[user] = f"fan{user}"
        for user in crowd:
            await emulator.user_says(ENABLED, user, "Inosuke! Inosuke!")
        async with asyncio.timeout(60):
            while len([p for p in emulator.posted if p.channel_id == ENABLED]) < len(crowd):
                await asyncio.sleep(0.1)
        await emulator.user_says(TRAINING, ZENITSU, "Other channels are not kept waiting")
        await emulator.user_says(TRAINING, ZENITSU, "Hey", mention_bot=True)
        await emulator.wait_for_bot_message(TRAINING)

    emulator = run_bot(runtime, body, DiscordSettings(enabled_channels=[ENABLED], rate_limit_messages=100))
    answers = [p.content for p in emulator.posted if p.channel_id == ENABLED]
    waited = answers.count(WAIT_YOUR_TURN)
    assert len(answers) == len(crowd) and 10 <= waited <= len(crowd) - 3  # everyone answered; most told to wait
    assert len(runtime.prompts) == len(crowd) - waited + 1


def test_the_rate_limit_answers_once_per_window(make_runtime, run_bot, fake_served):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        for n in range(12):
            await emulator.user_says(GENERAL, TANJIRO, f"message {n}", mention_bot=True)
        await emulator.user_says(GENERAL, ZENITSU, "my turn", mention_bot=True)  # others are not limited
        await emulator.wait_for_bot_message(GENERAL, after=3)
        await asyncio.sleep(1.0)  # anything more would have been posted by now

    emulator = run_bot(runtime, body, DiscordSettings(rate_limit_messages=2, rate_limit_seconds=60))
    said = [p.content for p in emulator.posted]
    assert said.count(SLOW_DOWN) == 1 and len(said) == 4  # 2 replies to Tanjiro, one "slow down", Zenitsu's reply


def test_messages_with_no_text_are_neither_answered_nor_stored(make_runtime, run_bot, fake_served, db_rows):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        await emulator.user_says(ENABLED, TANJIRO, "", attachments=1)  # an image alone
        await emulator.user_says(ENABLED, TANJIRO, "", mention_bot=True, attachments=2)  # an image and a ping
        await emulator.user_says(ENABLED, ZENITSU, "", kind=7)  # "Zenitsu joined the server"
        await emulator.user_says(ENABLED, ZENITSU, "\u200b\u200d\u2060 \ufeff")  # zero-width characters only
        await emulator.user_says(ENABLED, ZENITSU, "Now a real question?")
        assert (await emulator.wait_for_bot_message(ENABLED)).content
        await asyncio.sleep(0.5)

    emulator = run_bot(runtime, body, DiscordSettings(enabled_channels=[ENABLED]))
    assert len(emulator.posted) == 1
    assert db_rows("select author_id, content from messages where not by_bot") == [(ZENITSU, "Now a real question?")]
