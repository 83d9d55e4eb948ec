"""The feedback loop end to end on CPU: users rate replies on the emulated Discord, approved ones
become training samples with the exact context the bot used, an opted-out user's lines appear
nowhere; retrain produces, evaluates and promotes (or rejects) a candidate and records the run;
the running bot hot-swaps to a promoted adapter and stores the new version on its next reply;
rollback; the model is released while a training runs; a killed training leaves the old adapter
serving; the lock stops a second run."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bot.discord_front.commands import FORGETTING
from bot.service.adapter_follower import AdapterFollower
from core.settings import ServingSettings
from core.registry import versions
from bot.service.pipeline import TRAINING_IN_THE_MOUNTAINS
from core.db.database import connect, connect_sync
from core.db.history import History
from core.paths import PROJECT_ROOT
from core.prompt import generation_prompt
from core.db.ratings import Ratings
from core.served_model import load_served
from core.serving_pointer import in_service, promote, read_pointer, rollback
from core.training_lock import training_in_progress, training_lock
from tests.discord_front.emulator import GENERAL, GUILD_ID, TANJIRO, TRAINING, ZENITSU
from trainer.chat_logs import LogRules, collect
from trainer.evaluation.evaluate import EvalSettings
from trainer.evaluation.gate import GateSettings

KANAO = 203  # opts out with /forget-me, then keeps talking


def copy_version(source, registry, name):
    """A published version in `registry` with the adapter weights of `source`."""
    target = registry / name
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "version": name}))
    return target


@pytest.mark.each_database
def test_rated_replies_become_samples_with_the_bots_own_context_and_opted_out_lines_nowhere(
        make_runtime, run_bot, fake_served, db_rows, db_url, tokenizer, persona):
    runtime = make_runtime(fake_served)
    replies = {}

    async def body(emulator, client):
        emulator.users[KANAO] = "Kanao"
        question = await emulator.slash(GENERAL, KANAO, "forget-me", {})
        acknowledged = await emulator.click(GENERAL, KANAO, question.message, emulator.buttons(question.message)["Yes, forget me"])
        await emulator.edited_from(acknowledged.message, FORGETTING)  # done: what Kanao says next is kept

        async def exchange(user, text, name):
            await emulator.user_says(GENERAL, user, text, mention_bot=True)
            replies[name] = (await emulator.wait_for_bot_message(GENERAL, after=len(replies))).message

        await exchange(TANJIRO, "Inosuke, let's train by the waterfall.", "r1")
        await exchange(ZENITSU, "I'm not coming, it's freezing!", "r2")
        await exchange(KANAO, "My secret word is lotus.", "r3")  # answers the opted-out user
        await exchange(TANJIRO, "Did you hear Kanao?", "r4")  # its context held Kanao's line
        await exchange(ZENITSU, "Say something nice for once.", "r5")

        for user in (TANJIRO, ZENITSU):
            await emulator.click(GENERAL, user, replies["r1"], emulator.buttons(replies["r1"])["👍"])  # 2 👍: qualifies
        await emulator.click(GENERAL, TANJIRO, replies["r2"], emulator.buttons(replies["r2"])["👎"])
        for name in ("r2", "r3", "r4"):
            await emulator.context_menu(GENERAL, TANJIRO, "Approve for training", replies[name], moderator=True)
        for user in (TANJIRO, ZENITSU):
            await emulator.click(GENERAL, user, replies["r5"], emulator.buttons(replies["r5"])["👍"])
        await emulator.context_menu(GENERAL, TANJIRO, "Reject for training", replies["r5"], moderator=True)

    run_bot(runtime, body)
    ids = dict(zip(["r1", "r2", "r3", "r4", "r5"], [r[0] for r in db_rows("select id from messages where by_bot order by id")]))
    assert db_rows(f"select count(*) from messages where author_id = {KANAO}") == [(1,)]  # kept for the bot's context

    with connect_sync(db_url) as sessions:
        result = collect(sessions, persona, tokenizer, LogRules(min_thumbs_up=2, max_thumbs_down=0))
    by_reply = {s.reply_id: s for s in result.samples}
    # r1 by its two 👍, r2 and r4 approved (r2's 👎 does not matter once approved); r3 answered an
    # opted-out user; r5 was rejected despite its 👍.
    assert sorted(by_reply) == [ids["r1"], ids["r2"], ids["r4"]]
    assert {by_reply[ids["r1"]].why, by_reply[ids["r2"]].why} == {"ratings", "approved"}
    assert result.rejected == 1 and result.excluded_opted_out == 1 and result.opted_out_users == {KANAO}

    # The same window and labels the bot used: the sample's context renders to the bot's prompt.
    for name, index in (("r1", 0), ("r2", 1)):
        sample = by_reply[ids[name]]
        assert generation_prompt(tokenizer, persona, sample.turns[:-1]) == runtime.prompts[index]
        assert sample.turns[-1].by_persona and sample.turns[-1].text == db_rows(f"select content from messages where id = {ids[name]}")[0][0]
    assert [t.speaker for t in by_reply[ids["r2"]].turns if not t.by_persona] == ["Tanjiro", "Zenitsu"]
    assert "lotus" in runtime.prompts[3]  # the bot did see it ...
    everything = json.dumps(result.sample_rows()) + json.dumps([vars(p) for p in result.preferences])
    assert "lotus" not in everything and "Kanao" not in json.dumps([t.speaker for s in result.samples for t in s.turns])

    labels = {p.reply_id: p.label for p in result.preferences}
    assert labels == {ids["r1"]: True, ids["r2"]: True, ids["r4"]: True, ids["r5"]: False}


# ---- retrain, gate, promotion, records ----------------------------------------------------

@pytest.fixture
def loop_state(tmp_path, monkeypatch, model_cache, persona, db_url):
    """A state folder and database for the trainer commands, with two approved replies."""
    monkeypatch.setenv("INOSUKE_STATE_DIR", str(tmp_path / "state"))
    url = db_url
    monkeypatch.setenv("INOSUKE_DATABASE_URL", url)

    async def seed():
        async with connect(url) as sessions:
            await add_approved(History(sessions), Ratings(sessions))

    async def add_approved(history, ratings):
        for channel, (user, line, reply) in enumerate([
                (TANJIRO, "Want to race to the river?", "A RACE?! I'll win before you even start, Monjiro!"),
                (ZENITSU, "Do you ever get tired?", "Tired?! Lord Inosuke doesn't know that word!")], start=1):
            asked = await history.add(channel, user, "Tanjiro" if user == TANJIRO else "Zenitsu", line, guild_id=GUILD_ID)
            reply_id = await history.add(channel, 0, "Inosuke", reply, by_bot=True, answers_id=asked)
            await ratings.decide(reply_id, TANJIRO, approved=True)

    asyncio.run(seed())
    return tmp_path / "state", url


def few_curated_samples(folder, per_source: int):
    """The first `per_source` samples of each curated source file, as a data folder."""
    folder.mkdir()
    for source in sorted((PROJECT_ROOT / "data").glob("*.jsonl")):
        with source.open(encoding="utf-8") as lines:
            (folder / source.name).write_text("".join(itertools.islice(lines, per_source)), encoding="utf-8")
    return folder


PERMISSIVE_GATE = GateSettings(min_style_gain=-1.0, max_failure_rate_increase=1.0, max_qa_drop=1.0,
                               max_eval_loss_increase=0.0, max_multi_turn_drop=1.0)  # only "lower loss" must hold


def retrain_settings_on_a_slice(tmp_path):
    """Retrain settings that train 4 steps on a 40-per-source slice of the curated set (staging
    and tokenizing all of it took minutes on 2 cores), with only the gate's decoding evaluated.
    4 steps lower the held-out loss below the base's by far more than the gate needs (2 steps
    already did); the 12 it trained before made the test 27 s longer alone (50 s in `make test`)
    for nothing it checks."""
    from trainer.retrain import RetrainSettings

    curated = few_curated_samples(tmp_path / "curated", per_source=40)
    fast = [f"data={curated}", "max_steps=4", "eval_every=4", "eval_max_samples=4", "batch_size=1", "learning_rate=3e-4",
            "max_seq_len=512"]  # rows of 512, as these steps were tuned on
    settings = RetrainSettings(profile_overrides=fast, eval_limit=2, training_guilds=[GUILD_ID])
    return curated, settings, EvalSettings(max_new_tokens=24, also_report=False, gate=PERMISSIVE_GATE)


@pytest.mark.each_database
def test_a_retrain_dry_run_shows_the_export_and_changes_nothing(loop_state, capsys, tmp_path):
    from trainer.retrain import retrain

    state, url = loop_state
    _, settings, evaluation = retrain_settings_on_a_slice(tmp_path)
    dry = retrain(settings, evaluation, dry_run=True)
    shown = capsys.readouterr().out
    assert dry.status == "dry-run" and len(dry.export.samples) == 2 and dry.curated == 4 * 40
    assert "approved chat-log samples: 2" in shown and "approved_logs" in shown and "I'll win before you even start" in shown
    assert versions(state / "adapters") == [] and list((state / "retrain").iterdir()) == []  # nothing trained, nothing left


# Two trainings and two evaluations: on SQLite only (4 minutes per database on 2 cores). On
# PostgreSQL a retrain process records its run in the lock test below, and the export is the dry run's.
@pytest.mark.training
def test_retrain_promotes_a_better_candidate_and_rejects_a_worse_one(loop_state, tmp_path):
    from core.db.training_runs import all_runs
    from trainer.retrain import RetrainSettings, retrain

    state, url = loop_state
    curated, settings, evaluation = retrain_settings_on_a_slice(tmp_path)
    first = retrain(settings, evaluation)  # nothing in service yet: against the untuned base
    assert first.status == "promoted", first.reason
    assert in_service(state / "adapters") == first.candidate and first.previous is None
    assert first.comparison.a["eval_loss"] < first.comparison.b["eval_loss"]

    # A candidate that cannot beat the one in service leaves it serving.
    hopeless = EvalSettings(max_new_tokens=24, also_report=False, gate=GateSettings(min_style_gain=5.0))
    second = retrain(RetrainSettings(profile_overrides=[f"data={curated}", "max_steps=2", "eval_every=2", "eval_max_samples=2"], eval_limit=2,
                                     training_guilds=[GUILD_ID]), hopeless)
    assert second.status == "rejected" and "style score" in second.reason
    assert in_service(state / "adapters") == first.candidate and second.candidate.name != first.candidate.name

    with connect_sync(url) as sessions:
        runs = all_runs(sessions)
    assert [(r.status, r.approved_samples, r.candidate_version, r.previous_version) for r in runs] == [
        ("promoted", 2, first.candidate.name, None), ("rejected", 2, second.candidate.name, first.candidate.name)]
    assert runs[0].curated_samples == first.curated and runs[0].metrics["candidate"]["eval_loss"] < runs[0].metrics["current"]["eval_loss"]
    assert "better on" in runs[0].reason and runs[1].finished_at is not None
    assert list((state / "retrain").glob("*/data")) == []  # the staged copy is gone once a run ends ...
    snapshots = (state / "runs").glob("*/dataset/*.jsonl")  # ... the run's dataset keeps the samples, reply ids with them
    assert any("Lord Inosuke doesn't know that word" in p.read_text() and '"reply_id"' in p.read_text() for p in snapshots)


@pytest.mark.each_database
@pytest.mark.timeout(600)  # a retrain process is started, reaches training and is killed
def test_the_lock_stops_a_second_run_and_a_killed_training_changes_nothing(loop_state, trained_adapter, tmp_path):
    from core.db.training_runs import all_runs
    from trainer.cli.feedback import EXIT_ALREADY_RUNNING

    state, url = loop_state
    registry = state / "adapters"
    serving = copy_version(trained_adapter.adapter, registry, "v0001")
    promote(serving, registry)

    env = {**os.environ, "INOSUKE_STATE_DIR": str(state), "INOSUKE_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "retrain.log", "w")
    # A few curated lines per source: the run only has to reach training (the whole curated set
    # takes minutes to stage and tokenize on 2 cores, and this test kills it anyway).
    curated = few_curated_samples(tmp_path / "curated", per_source=8)
    child = subprocess.Popen([sys.executable, "-m", "trainer", "retrain", "--set",
                              f"profile_overrides=[data={curated},max_steps=500,eval_every=500,eval_max_samples=2]"],
                             cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "training:" not in (tmp_path / "retrain.log").read_text() and time.monotonic() < deadline:
            assert child.poll() is None, (tmp_path / "retrain.log").read_text()
            time.sleep(0.5)
        assert training_in_progress()
        second = subprocess.run([sys.executable, "-m", "trainer", "retrain"], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=240)
        assert second.returncode == EXIT_ALREADY_RUNNING and "already running" in second.stdout
        child.send_signal(signal.SIGKILL)  # half way through training, no chance to clean up
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        log.close()

    assert not training_in_progress()  # the kernel released the lock with the process
    assert in_service(registry) == serving and read_pointer(registry)["version"] == "v0001"
    assert [p.name for p in versions(registry)] == ["v0001"]  # nothing half written looks like a version
    with connect_sync(url) as sessions:
        runs = all_runs(sessions)
    assert [r.status for r in runs] == ["running"]  # killed: marked failed by the next run, which holds the lock


def test_the_running_bot_hot_swaps_rolls_back_and_releases_the_model_for_training(
        make_runtime, run_bot, db_rows, trained_adapter, tmp_path):
    registry = tmp_path / "adapters"
    v1 = copy_version(trained_adapter.adapter, registry, "v0001")
    v2 = copy_version(trained_adapter.adapter, registry, "v0002")
    lock = tmp_path / "training.lock"

    runtime = make_runtime(load_served(v1))
    promote(v1, registry)
    follower = AdapterFollower(runtime, ServingSettings(poll_s=0.1, release_during_training=True), registry, lock)

    async def body(emulator, client):
        watching = asyncio.create_task(follower.run())
        try:
            await emulator.user_says(GENERAL, TANJIRO, "Morning!", mention_bot=True)
            await emulator.wait_for_bot_message(GENERAL)

            promote(v2, registry)  # what `trainer retrain` does when the gate passes
            during = [emulator.user_says(channel, TANJIRO, "Are you still there?", mention_bot=True) for channel in (GENERAL, TRAINING)]
            await asyncio.gather(*during)
            async with asyncio.timeout(60):
                while runtime.adapter_version != "v0002":
                    await asyncio.sleep(0.05)
            await emulator.wait_for_bot_message(GENERAL, after=1)
            await emulator.wait_for_bot_message(TRAINING)  # nothing dropped across the swap
            await emulator.user_says(GENERAL, ZENITSU, "Who's serving now?", mention_bot=True)
            await emulator.wait_for_bot_message(GENERAL, after=2)
            status = await emulator.slash(GENERAL, ZENITSU, "inosuke", {})
            assert "Adapter: v0002" in status.content

            assert rollback(registry) == ("v0002", "v0001")
            async with asyncio.timeout(60):
                while runtime.adapter_version != "v0001":
                    await asyncio.sleep(0.05)

            with training_lock(lock):  # a training starts on the same (small) device
                async with asyncio.timeout(30):
                    while not follower.released:
                        await asyncio.sleep(0.05)
                await emulator.user_says(TRAINING, ZENITSU, "Hello?", mention_bot=True)
                assert (await emulator.wait_for_bot_message(TRAINING, after=1)).content == TRAINING_IN_THE_MOUNTAINS
            async with asyncio.timeout(60):
                while follower.released or runtime.worker.served is None:
                    await asyncio.sleep(0.05)
            await emulator.user_says(TRAINING, ZENITSU, "Back?", mention_bot=True)
            assert (await emulator.wait_for_bot_message(TRAINING, after=2)).content != TRAINING_IN_THE_MOUNTAINS
        finally:
            watching.cancel()

    run_bot(runtime, body)
    stored = db_rows("select adapter_version from messages where by_bot order by id")
    # First reply by v0001; both replies around the swap by whichever adapter wrote them; then v0002;
    # after the rollback and the training, v0001 again. The mountain message is not stored.
    assert stored[0] == ("v0001",) and stored[3] == ("v0002",) and stored[-1] == ("v0001",)
    assert {v for (v,) in stored[1:3]} <= {"v0001", "v0002"} and len(stored) == 5
    assert follower.swaps[:2] == [("v0001", "v0002"), ("v0002", "v0001")]
