"""End to end against the real engine: the real discord.py client and the emulator, the real
pipeline and database, and a real vLLM (CPU) process serving the embedded model from its own
virtualenv (`make vllm`; `make test` builds it). One engine process for the module (vLLM starts in
minutes on 2 cores): a reply from the base, a reply from the trained adapter, a promotion loaded
into the running engine with no restart and stored with the next reply, and the engine killed
mid-request (an in-character apology) and restarted (replies resume, the adapter loaded again).

Skipped, with the reason, when the vLLM virtualenv could not be built or the engine does not start."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import urllib.request

import pytest

from bot.service.adapter_follower import AdapterFollower
from bot.service.engine_client import OpenAIEngine, remote_served
from bot.service.pipeline import APOLOGY, ChatPipeline
from bot.service.runtime import Runtime
from core.db.database import make_engine, sessions
from core.db.history import History
from core.decoding import Decoding
from core.settings import OpenAIEngineSettings, ServingSettings
from tests.discord_front.emulator import GENERAL, TANJIRO, TRAINING, ZENITSU

pytestmark = [pytest.mark.model, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def vllm(model_cache):
    from core.model_resolver import embedded_folder
    from tools.vllm_engine import VLLMEngine, VLLMUnavailable

    engine = VLLMEngine(embedded_folder())
    try:
        engine.start()
    except VLLMUnavailable as exc:
        pytest.skip(f"no vLLM engine: {exc}")
    yield engine
    engine.stop()


def engine_models(vllm) -> set[str]:
    with urllib.request.urlopen(vllm.url + "/v1/models", timeout=10) as response:
        return {m["id"] for m in json.load(response)["data"]}


@pytest.fixture
def engine_runtime(db_url, persona):
    """engine_runtime(vllm, adapter) -> a Runtime whose model is the vLLM engine (backend: openai)."""

    def make(vllm, adapter=None, **overrides) -> Runtime:
        settings = OpenAIEngineSettings(base_url=vllm.url, **({"request_timeout_s": 300.0} | overrides))
        engine = OpenAIEngine(settings, remote_served(adapter, "smollm2-135m"),
                              decoding=Decoding(max_new_tokens=48, repetition_penalty=1.1))
        db = make_engine(db_url)
        history = History(sessions(db))
        return Runtime(ChatPipeline(history, engine, persona), engine, history, db)

    return make


def republish(adapter, registry, version: str):
    """The trained adapter (the fixture's TrainOutcome) copied into the registry under another
    version, as a retrain publishes one."""
    target = registry / version
    shutil.copytree(adapter.adapter, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps(manifest | {"version": version}))
    return target


def test_a_reply_from_the_base_model_served_by_vllm(vllm, engine_runtime, run_bot, db_rows):
    runtime = engine_runtime(vllm)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Who are you?", mention_bot=True)
        reply = await emulator.wait_for_bot_message(GENERAL)
        assert reply.content and reply.content != APOLOGY
        status = await emulator.slash(TRAINING, ZENITSU, "inosuke", {})
        assert f"Engine: OpenAI-compatible engine at {vllm.url} (base smollm2-135m)" in status.content
        assert "Adapter: none (base model)" in status.content

    run_bot(runtime, body)
    assert db_rows("select by_bot, adapter_version from messages order by id") == [(False, None), (True, None)]


def test_the_adapter_replies_and_a_promotion_is_hot_loaded_into_the_running_engine(vllm, engine_runtime, run_bot, db_rows,
                                                                                   trained_adapter, tmp_path):
    registry = tmp_path / "adapters"
    first = republish(trained_adapter, registry, "v0101")
    (registry / "current.json").write_text(json.dumps({"version": "v0101"}))
    runtime = engine_runtime(vllm, first)
    follower = AdapterFollower(runtime, ServingSettings(), registry, tmp_path / "training.lock")
    started = vllm.process.pid

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Who are you?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL)).content not in ("", APOLOGY)
        assert "v0101" in engine_models(vllm)

        republish(trained_adapter, registry, "v0102")
        (registry / "current.json").write_text(json.dumps({"version": "v0102"}))
        await follower.check()
        assert runtime.adapter_version == "v0102" and follower.swaps == [("v0101", "v0102")]
        models = await asyncio.to_thread(engine_models, vllm)
        assert "v0102" in models and "v0101" not in models  # loaded, switched, the old one unloaded
        await emulator.user_says(GENERAL, TANJIRO, "And now?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1)).content not in ("", APOLOGY)
        status = await emulator.slash(TRAINING, ZENITSU, "inosuke", {})
        assert "Adapter: v0102" in status.content

    run_bot(runtime, body)
    assert vllm.process.pid == started  # no restart
    assert db_rows("select adapter_version from messages where by_bot order by id") == [("v0101",), ("v0102",)]


def test_the_engine_killed_mid_request_gets_an_apology_and_replies_resume_after_its_restart(vllm, engine_runtime, run_bot,
                                                                                            db_rows, trained_adapter, tmp_path):
    adapter = republish(trained_adapter, tmp_path / "adapters", "v0201")
    runtime = engine_runtime(vllm, adapter, connect_timeout_s=2.0)
    runtime.worker.decoding = dataclasses.replace(runtime.worker.decoding, max_new_tokens=400)  # a long reply, so that the kill lands while it is generated

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Tell me everything about your training in the mountains, "
                                                   "every single day of it.", mention_bot=True)
        while runtime.worker.stats.largest_in_flight == 0 or "v0201" not in runtime.worker._loaded:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the request is in the engine
        await asyncio.to_thread(vllm.kill)
        assert (await emulator.wait_for_bot_message(GENERAL)).content == APOLOGY
        await emulator.user_says(GENERAL, TANJIRO, "Hello?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1)).content == APOLOGY  # still down

        await asyncio.to_thread(vllm.start)  # the same address; it knows no adapter any more
        runtime.worker.decoding = dataclasses.replace(runtime.worker.decoding, max_new_tokens=48)
        await emulator.user_says(GENERAL, TANJIRO, "Are you back?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=2)).content not in ("", APOLOGY)
        assert runtime.worker.stats.adapter_reloads == 1 and "v0201" in engine_models(vllm)

    run_bot(runtime, body)
    # The three user messages are stored; the one reply the engine wrote too, with its version.
    assert db_rows("select by_bot, adapter_version from messages order by id") == [
        (False, None), (False, None), (False, None), (True, "v0201")]
