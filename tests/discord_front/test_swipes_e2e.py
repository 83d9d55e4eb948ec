"""End to end, swipes: 🔄 under a reply edits the bot's message to another reply to the same
context (footer `-# 2/3`), again for a third; 👍 picks the one shown and the conversation going
on keeps it; an older reply is refused; the button works after a restart (DynamicItem). Real
discord.py client, emulator over loopback, a real SQLite file; the fake model samples among
fixed replies, so what it says depends on the request's seed only."""

from __future__ import annotations

import pytest

from bot.discord_front.rate_limit import SLOW_DOWN
from bot.discord_front.swipe import DECIDED_NO_SWIPE, NOT_YOURS_TO_SWIPE
from bot.service.pipeline import SWIPE_GREEDY, SWIPE_NOT_NEWEST, TRAINING_IN_THE_MOUNTAINS, swipe_seed
from core.db.database import connect_sync
from core.decoding import Decoding
from core.settings import ChatSettings, DiscordSettings
from tests.discord_front.emulator import GENERAL, GUILD_ID, TANJIRO, TRAINING, ZENITSU
from tests.fakes import SWIPE_CHOICES, fake_served_model
from trainer.chat_logs import LogRules, collect

# Sampled, and reproducible: the original reply's seed derives from `seed` and its prompt.
SAMPLED = Decoding(temperature=1.0, repetition_penalty=1.0, seed=0)


@pytest.fixture
def sampling_served(tokenizer):
    return fake_served_model(tokenizer, choices=SWIPE_CHOICES)


def text_and_footer(content: str) -> tuple[str, str | None]:
    text, _, footer = content.partition("\n-# ")
    return text, footer or None


def test_swipes_edit_the_reply_and_picks_make_pairs(make_runtime, run_bot, sampling_served, db_rows, db_url, persona,
                                                    tokenizer):
    runtime = make_runtime(sampling_served, decoding=SAMPLED)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Show me your best move!", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        original = reply["content"]
        assert original in SWIPE_CHOICES
        swipe = emulator.buttons(reply)["🔄"]

        acknowledged = await emulator.click(GENERAL, TANJIRO, reply, swipe)  # the one answered
        assert acknowledged.type == 6  # deferred: generating may take longer than Discord waits
        second = await emulator.wait_for_update(0)
        assert second["id"] == reply["id"]
        text, footer = text_and_footer(second["content"])
        assert footer == "2/2" and text in SWIPE_CHOICES and text != original

        await emulator.click(GENERAL, TANJIRO, reply, swipe)
        third, footer = text_and_footer((await emulator.wait_for_update(1))["content"])
        assert footer == "3/3" and third not in (original, text)
        assert emulator.messages[reply["id"]]["content"].startswith(third)  # the message itself shows it

        thanks = await emulator.click(GENERAL, ZENITSU, reply, emulator.buttons(reply)["👍"])
        assert "You rated this reply 👍" in thanks.content

        await emulator.user_says(GENERAL, TANJIRO, "Again!", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=1)
        refused = await emulator.click(GENERAL, TANJIRO, reply, swipe)
        assert refused.ephemeral and refused.content == SWIPE_NOT_NEWEST
        emulator.returned = (original, text, third)

    texts = run_bot(runtime, body).returned
    reply_id = db_rows("select min(id) from messages where by_bot")[0][0]
    rows = db_rows(f"select position, seed, shown, chosen, picked_by from reply_alternatives where reply_id = {reply_id} "
                   "order by position")
    assert rows == [(0, None, False, False, ZENITSU), (1, swipe_seed(reply_id, 1), False, False, ZENITSU),
                    (2, swipe_seed(reply_id, 2), True, True, ZENITSU)]
    # The reply row holds the one shown: it is the context of the next reply.
    [(shown,)] = db_rows(f"select content from messages where id = {reply_id}")
    assert shown in SWIPE_CHOICES and shown in runtime.prompts[-1]
    # Every alternative was generated from the very prompt the original was.
    assert len(set(runtime.prompts[:3])) == 1

    # The trainer's pairs: that prompt, the one picked against each of the others.
    original, second, third = texts
    pairs = export_pairs(db_url, persona, tokenizer, [GUILD_ID])
    assert [(p.reply_id, p.prompt, p.chosen, p.rejected) for p in pairs] == [
        (reply_id, runtime.prompts[0], third, original), (reply_id, runtime.prompts[0], third, second)]
    assert export_pairs(db_url, persona, tokenizer, []) == []  # not a training guild
    db_rows(f"insert into opt_outs (user_id, created_at) values ({ZENITSU}, '2026-12-06')")
    assert export_pairs(db_url, persona, tokenizer, [GUILD_ID]) == []  # the picker opted out


def export_pairs(db_url, persona, tokenizer, guilds):
    with connect_sync(db_url) as sessions:
        return collect(sessions, persona, tokenizer, LogRules(2, 0, training_guilds=guilds)).pairs


def test_at_the_cap_swipes_go_round_and_going_on_keeps_the_one_shown(make_runtime, run_bot, sampling_served, db_rows):
    runtime = make_runtime(sampling_served, decoding=SAMPLED, chat=ChatSettings(swipe_alternatives=2))

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Pick a fight!", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        original = reply["content"]  # (the dict is the message: edits change it)
        for _ in range(3):
            await emulator.click(GENERAL, TANJIRO, reply, emulator.buttons(reply)["🔄"])
        shown = [text_and_footer((await emulator.wait_for_update(i))["content"]) for i in range(3)]
        assert [footer for _, footer in shown] == ["2/2", "1/2", "2/2"]  # nothing generated past the cap
        assert shown[1][0] == original and shown[0][0] == shown[2][0]
        await emulator.user_says(GENERAL, ZENITSU, "Then what?", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=1)

    run_bot(runtime, body)
    assert len(runtime.prompts) == 3  # the original, one alternative, the next reply
    assert db_rows("select position, chosen, picked_by from reply_alternatives order by position") == [
        (0, False, ZENITSU), (1, True, ZENITSU)]


def test_only_the_one_answered_or_a_moderator_may_swipe_and_a_decision_stays(make_runtime, run_bot, sampling_served,
                                                                            db_rows):
    """Showing another text withdraws the reply's approval or rejection; a member swiping round
    back to a rejected text would undo a moderator's decision. So: the asker or a moderator may
    swipe, and once a moderator decided, only a moderator."""
    runtime = make_runtime(sampling_served, decoding=SAMPLED, chat=ChatSettings(swipe_alternatives=2))
    member = 555_000_000_000_000_001  # neither the one answered nor a moderator

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Say something awful", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        swipe = emulator.buttons(reply)["🔄"]
        refused = await emulator.click(GENERAL, member, reply, swipe)
        assert refused.ephemeral and refused.content == NOT_YOURS_TO_SWIPE
        await emulator.click(GENERAL, TANJIRO, reply, swipe)  # the one answered: a new alternative
        assert text_and_footer((await emulator.wait_for_update(0))["content"])[1] == "2/2"
        menu = await emulator.context_menu(GENERAL, ZENITSU, "Reject for training", reply, moderator=True)
        assert menu.content.startswith("Rejected for training")
        for clicker in (member, TANJIRO):  # round back to the original would withdraw the rejection
            refused = await emulator.click(GENERAL, clicker, reply, swipe)
            assert refused.ephemeral and refused.content == DECIDED_NO_SWIPE
        assert db_rows("select approved from approvals") == [(False,)]
        await emulator.click(GENERAL, ZENITSU, reply, swipe, moderator=True)  # a moderator may: they decide again
        assert text_and_footer((await emulator.wait_for_update(1))["content"])[1] == "1/2"

    run_bot(runtime, body)
    assert db_rows("select count(*) from approvals") == [(0,)]  # the moderator's own swipe withdrew it


def test_swipes_count_towards_the_rate_limit(make_runtime, run_bot, sampling_served):
    """Each swipe makes the model write a reply, like a message: one user cannot get around
    `rate_limit_messages` by pressing 🔄."""
    runtime = make_runtime(sampling_served, decoding=SAMPLED)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Show me!", mention_bot=True)  # 1 of 2
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        swipe = emulator.buttons(reply)["🔄"]
        await emulator.click(GENERAL, TANJIRO, reply, swipe)  # 2 of 2
        await emulator.wait_for_update(0)
        refused = await emulator.click(GENERAL, TANJIRO, reply, swipe)
        assert refused.ephemeral and refused.content == SLOW_DOWN

    run_bot(runtime, body, DiscordSettings(rate_limit_messages=2, rate_limit_seconds=60))
    assert len(runtime.prompts) == 2  # the reply and one alternative


def test_going_round_the_written_alternatives_does_not_count_towards_the_rate_limit(make_runtime, run_bot,
                                                                                    sampling_served):
    runtime = make_runtime(sampling_served, decoding=SAMPLED, chat=ChatSettings(swipe_alternatives=2))

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Show me!", mention_bot=True)  # 1 of 3
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        swipe = emulator.buttons(reply)["🔄"]
        for n in range(4):  # the first writes an alternative (2 of 3); the others go round, writing nothing
            await emulator.click(GENERAL, TANJIRO, reply, swipe)
            await emulator.wait_for_update(n)
        await emulator.user_says(GENERAL, TANJIRO, "Again!", mention_bot=True)  # 3 of 3: answered
        return (await emulator.wait_for_bot_message(GENERAL, after=1)).message

    emulator = run_bot(runtime, body, DiscordSettings(rate_limit_messages=3, rate_limit_seconds=60))
    assert SLOW_DOWN not in [p.content for p in emulator.posted]
    assert len(runtime.prompts) == 3  # the reply, one alternative, the answer to "Again!"


def test_the_swipe_button_works_after_a_restart_and_needs_sampling(make_runtime, run_bot, sampling_served, fake_served, db_rows):
    earlier = {}

    async def before(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Race me!", mention_bot=True)
        earlier["reply"] = (await emulator.wait_for_bot_message(GENERAL)).message
        greedy = await emulator.click(GENERAL, TANJIRO, earlier["reply"], emulator.buttons(earlier["reply"])["🔄"])
        assert greedy.ephemeral and greedy.content == SWIPE_GREEDY  # the same reply every time: nothing to swipe

    run_bot(make_runtime(fake_served), before)  # greedy decoding

    async def after(emulator, client):
        reply = earlier["reply"]  # sent by the previous process
        emulator.messages[reply["id"]] = reply
        await emulator.click(GENERAL, TANJIRO, reply, emulator.buttons(reply)["🔄"])
        text, footer = text_and_footer((await emulator.wait_for_update(0))["content"])
        assert footer == "2/2" and text in SWIPE_CHOICES
        client.runtime.worker.served = None  # released for a training: told after the deferred update
        await emulator.click(GENERAL, TANJIRO, reply, emulator.buttons(reply)["🔄"])
        assert await emulator.wait_for_update(1) == {"followup": TRAINING_IN_THE_MOUNTAINS, "ephemeral": True}

    run_bot(make_runtime(sampling_served, decoding=SAMPLED), after)
    assert db_rows("select count(*) from reply_alternatives") == [(2,)]


def test_a_scripted_feedback_loop_reaches_the_dpo_stage(make_runtime, run_bot, sampling_served, db_url, persona, tokenizer,
                                                       monkeypatch, tmp_path):
    """Swipes on the emulated Discord, then the retrain's own export and its DPO decision: skipped
    with its reason below dpo.min_pairs, run on exactly the exported pairs at it (the stage's
    training itself is tests/trainer/test_dpo.py)."""
    from rich.console import Console

    import trainer.dpo_stage
    from trainer.retrain import DPOSettings, RetrainSettings, export_logs, log_rules, maybe_dpo, show_export

    runtime = make_runtime(sampling_served, decoding=SAMPLED)

    async def body(emulator, client):
        for channel, user in ((GENERAL, TANJIRO), (TRAINING, ZENITSU)):
            await emulator.user_says(channel, user, "Show me what you've got!", mention_bot=True)
            reply = (await emulator.wait_for_bot_message(channel)).message
            await emulator.click(channel, user, reply, emulator.buttons(reply)["🔄"])
            await emulator.wait_for_update(len(emulator.updates))
        await emulator.click(TRAINING, ZENITSU, reply, emulator.buttons(reply)["👍"])  # picked in TRAINING ...
        await emulator.user_says(GENERAL, TANJIRO, "Next!", mention_bot=True)  # ... kept in GENERAL
        await emulator.wait_for_bot_message(GENERAL, after=1)

    run_bot(runtime, body)
    export = export_logs(db_url, persona, tokenizer, log_rules(RetrainSettings(training_guilds=[GUILD_ID])), "chat")
    assert len(export.pairs) == 2 and {p.prompt for p in export.pairs} == {runtime.prompts[0], runtime.prompts[2]}

    console = Console(record=True, width=200)
    show_export(console, export, curated=0)
    assert "swipe pairs (chosen, rejected): 2 from 2 swiped repl(ies)" in console.export_text()
    candidate = tmp_path / "v0001"
    assert maybe_dpo(DPOSettings(enabled=True, min_pairs=3), candidate, export, tmp_path, tmp_path, console) is None
    assert "DPO stage skipped: 2 swipe pair(s) from 2 repl(ies); needs at least 3" in console.export_text()

    ran = []
    monkeypatch.setattr(trainer.dpo_stage, "run_dpo", lambda *args: ran.append(args) or tmp_path / "v0002")
    assert maybe_dpo(DPOSettings(enabled=True, min_pairs=2), candidate, export, tmp_path, tmp_path, console) == tmp_path / "v0002"
    [(started_from, pairs, settings, registry, work)] = ran
    assert (started_from, pairs, settings.min_pairs) == (candidate, export.pairs, 2)
