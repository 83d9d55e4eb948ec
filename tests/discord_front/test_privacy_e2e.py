"""Privacy that holds, end to end: /forget-me removes everything by or about the user (their
messages, the replies that quote them, their words in training data staged on disk, their id on
approvals they made) and the export never pairs a reply with someone else's message; edits and
deletes reach the history and the training data (an edit withdraws the endorsements of replies
that saw the old text); training context stops at every /reset, as the bot's did. Real
discord.py client, emulator, real SQLite; the fake model quotes the user where it matters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.discord_front.commands import FORGETTING
from core.db.database import connect_sync
from core.files import write_jsonl
from tests.discord_front.emulator import GENERAL, TANJIRO, TRAINING, ZENITSU
from trainer.chat_logs import LogRules, collect
from trainer.dataset.pipeline import build_dataset

KANAO = 203
RULES = LogRules(min_thumbs_up=1, max_thumbs_down=0)


def export(db_url, persona, tokenizer):
    with connect_sync(db_url) as sessions:
        return collect(sessions, persona, tokenizer, RULES)


def stage_like_a_retrain(state: Path, result, persona) -> list[Path]:
    """What `trainer retrain` leaves on disk: approved_logs.jsonl and a run's dataset snapshot."""
    data = state / "retrain" / "20260101-000000" / "data"
    write_jsonl(data / "approved_logs.jsonl", result.sample_rows())
    build_dataset(data, persona, state / "runs" / "run-1" / "dataset", eval_fraction=0.0)
    return [data / "approved_logs.jsonl", *sorted((state / "runs" / "run-1" / "dataset").glob("*.jsonl"))]


def test_forget_me_removes_everything_by_or_about_the_user(make_runtime, run_bot, fake_served_with, db_rows, db_url,
                                                           persona, tokenizer, tmp_path):
    runtime = make_runtime(fake_served_with(quote=True))
    state = tmp_path / "state"  # the bot's state folder in these tests
    staged = []

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        await emulator.user_says(GENERAL, ZENITSU, "x" * 2000, mention_bot=True)  # too long: stored, not answered by the model
        await emulator.wait_for_bot_message(GENERAL)
        await emulator.user_says(GENERAL, TANJIRO, "Call me at 555-0199, Tanjiro Kamado here", mention_bot=True)
        quoting_him = (await emulator.wait_for_bot_message(GENERAL, after=1)).message
        await emulator.user_says(GENERAL, KANAO, "I like butterflies", mention_bot=True)
        to_kanao = (await emulator.wait_for_bot_message(GENERAL, after=2)).message
        assert "555-0199" in quoting_him["content"]
        for reply in (quoting_him, to_kanao):  # Tanjiro moderates, Zenitsu likes them
            await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", reply, moderator=True)
            await emulator.click(GENERAL, ZENITSU, reply, emulator.buttons(reply)["👍"])
        await emulator.click(GENERAL, TANJIRO, to_kanao, emulator.buttons(to_kanao)["👍"])

        before = export(db_url, persona, tokenizer)
        assert len(before.samples) == 2 and "555-0199" in json.dumps(before.sample_rows())
        staged.extend(stage_like_a_retrain(state, before, persona))
        assert all("555-0199" in p.read_text() for p in staged if p.stat().st_size), [p.read_text()[:300] for p in staged]

        question = await emulator.slash(GENERAL, TANJIRO, "forget-me", {})
        acknowledged = await emulator.click(GENERAL, TANJIRO, question.message, emulator.buttons(question.message)["Yes, forget me"])
        assert acknowledged.content == FORGETTING  # at once, before Discord's 3 s
        done = await emulator.edited_from(acknowledged.message, FORGETTING)
        assert done["content"].startswith("Done. Deleted 1 message(s) of yours, 1 repl(ies) of mine to you and 1 rating(s) "
                                       "of yours; 1 moderator decision(s) no longer carry your id; 0 swiped alternative(s) "
                                       "that could quote you deleted and 0 swipe pick(s) of yours undone")
        assert "cannot unlearn" in done["content"]

        await emulator.user_says(GENERAL, KANAO, "What did he say?", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=3)

    run_bot(runtime, body)
    everything = json.dumps(db_rows("select * from messages")) + json.dumps(db_rows("select * from ratings"))
    assert "555-0199" not in everything and "Tanjiro" not in everything
    conversation = runtime.prompts[-1].split("<|im_end|>", 1)[1]  # after the persona card (which names Tanjiro)
    assert "555-0199" not in conversation and "Tanjiro" not in conversation  # live context
    assert TANJIRO not in {m for (m,) in db_rows("select moderator_id from approvals")}
    assert db_rows("select count(*) from approvals where moderator_id is null") == [(1,)]  # the decision stays, his id goes
    for path in staged:  # staged training data on disk
        assert "555-0199" not in path.read_text() and "Tanjiro" not in path.read_text(), path
    after = export(db_url, persona, tokenizer)
    # Kanao's exchange remains, without his lines; nothing is paired with Zenitsu's unrelated message.
    assert [s.turns[-2].text for s in after.samples] == ["I like butterflies"]


def test_edits_and_deletes_reach_history_and_training(make_runtime, run_bot, fake_served, db_rows, db_url, persona, tokenizer):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        said = await emulator.user_says(GENERAL, TANJIRO, "The password is swordfish", mention_bot=True)
        reply = (await emulator.wait_for_bot_message(GENERAL)).message
        await emulator.context_menu(GENERAL, ZENITSU, "Approve for training", reply, moderator=True)
        await emulator.click(GENERAL, ZENITSU, reply, emulator.buttons(reply)["👍"])
        await emulator.edit(said, "The password is a secret")  # after approval: the endorsements go

        # "Post, get a reply, edit the post to something harmless, get it approved."
        bait = await emulator.user_says(TRAINING, ZENITSU, "something nasty", mention_bot=True)
        bait_reply = (await emulator.wait_for_bot_message(TRAINING)).message
        await emulator.edit(bait, "something nice")
        await emulator.context_menu(TRAINING, TANJIRO, "Approve for training", bait_reply, moderator=True)

        gone = await emulator.user_says(GENERAL, ZENITSU, "my address is 12 Wisteria Lane", mention_bot=True)
        gone_reply = (await emulator.wait_for_bot_message(GENERAL, after=1)).message
        await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", gone_reply, moderator=True)
        await emulator.delete(gone)

        await emulator.user_says(GENERAL, TANJIRO, "What's the password?", mention_bot=True)
        await emulator.wait_for_bot_message(GENERAL, after=2)

    run_bot(runtime, body)
    stored = json.dumps(db_rows("select content from messages"))
    assert "swordfish" not in stored and "nasty" not in stored and "Wisteria" not in stored
    assert "swordfish" not in runtime.prompts[-1] and "Wisteria" not in runtime.prompts[-1]
    assert "The password is a secret" in runtime.prompts[-1]
    first_reply = db_rows("select min(id) from messages where by_bot")[0][0]
    assert db_rows(f"select count(*) from approvals where message_id = {first_reply}") == [(0,)]  # withdrawn by the edit
    assert db_rows(f"select count(*) from ratings where message_id = {first_reply}") == [(0,)]
    result = export(db_url, persona, tokenizer)
    texts = json.dumps(result.sample_rows())
    assert [s.turns[-2].text for s in result.samples] == ["something nice"]  # as approved, never the original
    assert "nasty" not in texts and "Wisteria" not in texts
    assert result.excluded_unlinked == 1  # the reply to the deleted message: approved, but its message is gone


def test_a_message_edited_or_deleted_while_it_waits_for_its_turn_is_stored_as_it_reads_or_not_at_all(
        make_runtime, run_bot, fake_served_with, db_rows):
    """A channel answers one message at a time, so a message can wait seconds before it is stored.
    Deleted meanwhile, it is never stored, sent to the model or answered; edited, it is stored
    and answered as it reads now (the history had no row for the edit or the delete to reach)."""
    runtime = make_runtime(fake_served_with(delay_s=1.0))  # every reply takes a while, as on a busy CPU

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        await emulator.user_says(GENERAL, TANJIRO, "Inosuke, fight me!", mention_bot=True)
        await asyncio.sleep(0.3)  # his reply is being generated: the channel's next messages wait their turn
        oops = await emulator.user_says(GENERAL, ZENITSU, "my card number is 4111 1111 1111 1111", mention_bot=True)
        typo = await emulator.user_says(GENERAL, KANAO, "my password is swordfish", mention_bot=True)
        await asyncio.sleep(0.3)
        await emulator.delete(oops)
        await emulator.edit(typo, "my password is a secret")
        await emulator.wait_for_bot_message(GENERAL, after=1, timeout=30)  # the answer to Kanao's message
        await emulator.user_says(GENERAL, TANJIRO, "Again!", mention_bot=True)  # after it: the queue is drained
        await emulator.wait_for_bot_message(GENERAL, after=2, timeout=30)

    emulator = run_bot(runtime, body)
    stored = json.dumps(db_rows("select content from messages"))
    assert "4111" not in stored and "swordfish" not in stored and "my password is a secret" in stored
    assert not any("4111" in p or "swordfish" in p for p in runtime.prompts)
    assert len([p for p in emulator.posted if p.channel_id == GENERAL]) == 3  # Tanjiro twice, Kanao once


def test_a_message_deleted_or_edited_while_the_typing_indicator_starts_is_not_missed(make_runtime, run_bot, fake_served,
                                                                                   db_rows):
    """The bot shows "typing" before it hands a message on, and discord.py waits for Discord's
    answer to that request: an edit or a delete in that moment must reach the message too."""
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        emulator.typing_delay_s = 1.0  # a slow or rate-limited Discord API
        oops = await emulator.user_says(GENERAL, ZENITSU, "my card number is 4111 1111 1111 1111", mention_bot=True)
        typo = await emulator.user_says(TRAINING, KANAO, "my password is swordfish", mention_bot=True)
        await asyncio.sleep(0.3)
        await emulator.delete(oops)
        await emulator.edit(typo, "my password is a secret")
        emulator.typing_delay_s = 0.0
        await emulator.wait_for_bot_message(TRAINING, timeout=30)
        await emulator.user_says(GENERAL, TANJIRO, "Still there?", mention_bot=True)  # after the deleted one
        await emulator.wait_for_bot_message(GENERAL, timeout=30)

    emulator = run_bot(runtime, body)
    stored = json.dumps(db_rows("select content from messages"))
    assert "4111" not in stored and "swordfish" not in stored and "my password is a secret" in stored
    assert not any("4111" in p or "swordfish" in p for p in runtime.prompts)
    assert len([p for p in emulator.posted if p.channel_id == GENERAL]) == 1  # Tanjiro's answer only


def test_training_context_stops_at_every_reset(make_runtime, run_bot, fake_served, db_url, persona, tokenizer):
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        async def exchange(text, after):
            await emulator.user_says(GENERAL, TANJIRO, text, mention_bot=True)
            return (await emulator.wait_for_bot_message(GENERAL, after=after)).message

        await exchange("before the first reset: moonflower", 0)
        await emulator.slash(GENERAL, TANJIRO, "reset", {}, moderator=True)
        between = await exchange("between the resets", 1)
        await emulator.slash(GENERAL, TANJIRO, "reset", {}, moderator=True)
        await exchange("after the second reset", 2)
        await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", between, moderator=True)

    run_bot(runtime, body)
    [sample] = export(db_url, persona, tokenizer).samples
    assert [t.text for t in sample.turns[:-1]] == ["between the resets"]
    assert "moonflower" not in runtime.prompts[1]  # as the bot saw it


def test_an_edit_withdraws_nothing_past_a_reset(make_runtime, run_bot, fake_served, db_rows):
    """A reply after a /reset never saw what came before it: editing an old message again and
    again must not wipe the endorsements of every later reply to other people."""
    runtime = make_runtime(fake_served)

    async def body(emulator, client):
        old = await emulator.user_says(GENERAL, ZENITSU, "something to edit later", mention_bot=True)
        saw_it = (await emulator.wait_for_bot_message(GENERAL)).message
        await emulator.slash(GENERAL, TANJIRO, "reset", {}, moderator=True)
        await emulator.user_says(GENERAL, TANJIRO, "a fresh start", mention_bot=True)
        after_reset = (await emulator.wait_for_bot_message(GENERAL, after=1)).message
        for reply in (saw_it, after_reset):
            await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", reply, moderator=True)
            await emulator.click(GENERAL, TANJIRO, reply, emulator.buttons(reply)["👍"])
        await emulator.edit(old, "something edited")
        await emulator.user_says(GENERAL, TANJIRO, "and on", mention_bot=True)  # the edit event is handled before it
        await emulator.wait_for_bot_message(GENERAL, after=2)

    run_bot(runtime, body)
    first, second = [m for (m,) in db_rows("select id from messages where by_bot order by id")][:2]
    assert db_rows("select message_id from approvals") == [(second,)]  # the reply that saw the old text lost its own
    assert db_rows("select message_id from ratings") == [(second,)]


def test_edits_and_deletes_take_the_old_text_out_of_staged_training_data(make_runtime, run_bot, fake_served_with, db_url,
                                                                       persona, tokenizer, tmp_path):
    """Staged training files (a retrain's approved logs, a run's dataset snapshot) hold the text
    as it was exported: a message deleted or edited on Discord afterwards leaves them, as
    /forget-me's words do, even when the user never runs /forget-me."""
    runtime = make_runtime(fake_served_with(quote=True))
    staged = []

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        phone = await emulator.user_says(GENERAL, ZENITSU, "my phone is 555-0199", mention_bot=True)
        quoting_phone = (await emulator.wait_for_bot_message(GENERAL)).message
        address = await emulator.user_says(GENERAL, KANAO, "I live at 12 Wisteria Lane", mention_bot=True)
        quoting_address = (await emulator.wait_for_bot_message(GENERAL, after=1)).message
        for reply in (quoting_phone, quoting_address):
            await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", reply, moderator=True)
            await emulator.click(GENERAL, TANJIRO, reply, emulator.buttons(reply)["👍"])
        before = export(db_url, persona, tokenizer)
        assert len(before.samples) == 2
        staged.extend(stage_like_a_retrain(tmp_path / "state", before, persona))
        text = "".join(p.read_text() for p in staged)
        assert "555-0199" in text and "Wisteria" in text
        await emulator.delete(phone)
        await emulator.edit(address, "I live somewhere")
        await emulator.user_says(GENERAL, TANJIRO, "and on", mention_bot=True)  # both events are handled before it
        await emulator.wait_for_bot_message(GENERAL, after=2)

    run_bot(runtime, body)
    for path in staged:
        assert "555-0199" not in path.read_text() and "Wisteria" not in path.read_text(), path


def test_a_deleted_reply_of_the_bots_leaves_the_staged_rows_of_the_replies_that_saw_it(make_runtime, run_bot,
                                                                                    fake_served_with, db_url, persona,
                                                                                    tokenizer, tmp_path):
    """A moderator deletes a reply of the bot's that quoted someone's phone number: the next
    reply's staged training row held it as context, and goes too."""
    runtime = make_runtime(fake_served_with(quote=True))
    staged = []

    async def body(emulator, client):
        await emulator.user_says(GENERAL, ZENITSU, "my phone is 555-0199", mention_bot=True)
        quoting = (await emulator.wait_for_bot_message(GENERAL)).message
        await emulator.user_says(GENERAL, TANJIRO, "nice weather", mention_bot=True)
        later = (await emulator.wait_for_bot_message(GENERAL, after=1)).message
        await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", later, moderator=True)
        await emulator.click(GENERAL, TANJIRO, later, emulator.buttons(later)["👍"])
        before = export(db_url, persona, tokenizer)
        assert len(before.samples) == 1 and "555-0199" in json.dumps(before.sample_rows())
        staged.extend(stage_like_a_retrain(tmp_path / "state", before, persona))
        await emulator.delete(quoting)
        await emulator.user_says(GENERAL, TANJIRO, "and on", mention_bot=True)  # the delete is handled before it
        await emulator.wait_for_bot_message(GENERAL, after=2)

    run_bot(runtime, body)
    for path in staged:
        assert "555-0199" not in path.read_text(), path
