"""End to end against the real engine: the real discord.py client and the emulator, the real
pipeline and database, and real llama-server processes (llama.cpp, built by `make llama.cpp`,
which `make test` runs) that the bot starts itself on the embedded model's own GGUF: a reply from
the base, a reply from the trained adapter (its LoRA GGUF converted by the trainer's export), a
promotion (the trainer's promote, which exports the new version's LoRA GGUF first) hot-swapped to
a new process with no bot restart and stored with the next reply, and the process killed
mid-request (an in-character apology) and restarted by the watchdog (replies resume, same adapter),
and the process frozen mid-request (found hung by its /health probe, killed and restarted).

Skipped, with the reason, when the llama-server binary is not built."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import urllib.request
from functools import partial

import pytest

from bot.service.adapter_follower import AdapterFollower
from bot.service.engine_client import remote_served
from bot.service.llama_server_engine import LlamaServerEngine
from bot.service.pipeline import APOLOGY, ChatPipeline
from bot.service.runtime import Runtime
from core.db.database import make_engine, sessions
from core.db.history import History
from core.decoding import Decoding
from core.paths import PROJECT_ROOT
from core.settings import LlamaServerSettings, ServingSettings
from tests.discord_front.emulator import GENERAL, TANJIRO, TRAINING, ZENITSU

pytestmark = [pytest.mark.model, pytest.mark.timeout(1800)]

BINARY = PROJECT_ROOT / ".cache" / "llama.cpp" / "bin" / "llama-server"


@pytest.fixture(scope="module")
def llama_server_binary():
    if not BINARY.is_file():
        pytest.skip(f"no llama-server: {BINARY} is not built (run `make llama.cpp`)")
    return BINARY


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A state folder of its own: the registry (adapters/) and the exports (exports/<version>/)
    where the trainer writes LoRA GGUFs and the bot reads them."""
    monkeypatch.setenv("INOSUKE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "adapters").mkdir(parents=True)
    return tmp_path / "state"


@pytest.fixture(scope="module")
def lora_gguf(trained_adapter, llama_server_binary, tmp_path_factory):
    """The trained adapter as a LoRA GGUF, converted once by the trainer's export."""
    from trainer.export.export import export

    out = tmp_path_factory.mktemp("lora-gguf")
    return export(trained_adapter.adapter, ["lora-gguf"], out=out).files["lora-gguf"][0]


def republish(adapter, registry, version: str, lora_gguf=None):
    """The trained adapter (the fixture's TrainOutcome) copied into the registry under another
    version, as a retrain publishes one; with `lora_gguf`, its export copied beside it as the
    trainer's export names it."""
    target = registry / version
    shutil.copytree(adapter.adapter, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps(manifest | {"version": version}))
    if lora_gguf is not None:
        folder = registry.parent / "exports" / version
        folder.mkdir(parents=True)
        shutil.copy(lora_gguf, folder / lora_gguf.name.replace(adapter.manifest["version"], version))
    return target


@pytest.fixture
def engine_runtime(db_url, persona, llama_server_binary, tmp_path):
    """engine_runtime(adapter) -> a Runtime whose model is served by llama-server processes the
    engine starts (backend: llama-server), one thread each as the shared machine needs."""

    def make(adapter=None, **overrides) -> Runtime:
        settings = LlamaServerSettings(**{"binary": str(llama_server_binary), "threads": 1, "parallel": 2,
                                          "context_size": 4096, "start_timeout_s": 300, "request_timeout_s": 300} | overrides)
        engine = LlamaServerEngine(settings, remote_served(adapter, "smollm2-135m"), log_dir=tmp_path / "logs",
                                   decoding=Decoding(max_new_tokens=48, repetition_penalty=1.1)).start()
        db = make_engine(db_url)
        history = History(sessions(db))
        return Runtime(ChatPipeline(history, engine, persona), engine, history, db)

    return make


def lora_adapters(process) -> list[dict]:
    """What the llama-server process says it loaded (path and scale of each LoRA)."""
    with urllib.request.urlopen(process.url + "/lora-adapters", timeout=10) as response:
        return json.load(response)


def test_a_reply_from_the_base_model_served_by_llama_server(engine_runtime, run_bot, db_rows):
    runtime = engine_runtime()
    process = runtime.worker.process
    assert process.lora is None and lora_adapters(process) == []

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Who are you?", mention_bot=True)
        reply = await emulator.wait_for_bot_message(GENERAL)
        assert reply.content and reply.content != APOLOGY
        status = await emulator.slash(TRAINING, ZENITSU, "inosuke", {})
        assert (f"Engine: llama-server at {process.url} (model SmolLM2-135M-Instruct.Q4_1.gguf, LoRA none)"
                in status.content)
        assert "Adapter: none (base model)" in status.content

    run_bot(runtime, body)
    assert not process.alive()  # the bot's processes end with it
    assert db_rows("select by_bot, adapter_version from messages order by id") == [(False, None), (True, None)]


def test_the_adapter_replies_and_a_promotion_is_hot_swapped_to_a_new_process(engine_runtime, run_bot, db_rows, state,
                                                                             trained_adapter, lora_gguf, tmp_path):
    from core.serving_pointer import promote
    from trainer.export.serving import prepare_for_serving

    registry = state / "adapters"
    first = republish(trained_adapter, registry, "v0101", lora_gguf)
    (registry / "current.json").write_text(json.dumps({"version": "v0101"}))
    runtime = engine_runtime(first)
    follower = AdapterFollower(runtime, ServingSettings(), registry, tmp_path / "training.lock")
    old = runtime.worker.process
    bot_config = tmp_path / "bot.yaml"
    bot_config.write_text("backend: llama-server\n")

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Who are you?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL)).content not in ("", APOLOGY)
        [loaded] = await asyncio.to_thread(lora_adapters, old)
        assert loaded["path"].endswith("-v0101.lora.gguf") and loaded["scale"] == 1.0

        # A retrain publishes v0102 and promotes it: the trainer exports its LoRA GGUF first (no copy here).
        second = republish(trained_adapter, registry, "v0102")
        await asyncio.to_thread(promote, second, registry, "test", partial(prepare_for_serving, bot_config=bot_config))
        assert list((state / "exports" / "v0102").glob("*-v0102.lora.gguf"))
        await follower.check()
        assert runtime.adapter_version == "v0102" and follower.swaps == [("v0101", "v0102")]
        new = runtime.worker.process
        assert new.pid != old.pid and new.alive() and not old.alive()  # a new process; the old one stopped
        assert set(runtime.worker.processes) == {"v0102"}
        [loaded] = await asyncio.to_thread(lora_adapters, new)
        assert loaded["path"].endswith("-v0102.lora.gguf")
        await emulator.user_says(GENERAL, TANJIRO, "And now?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1)).content not in ("", APOLOGY)
        status = await emulator.slash(TRAINING, ZENITSU, "inosuke", {})
        assert "Adapter: v0102" in status.content and f"llama-server at {new.url}" in status.content
        assert "-v0102.lora.gguf)" in status.content

    run_bot(runtime, body)  # one bot, never restarted
    assert db_rows("select adapter_version from messages where by_bot order by id") == [("v0101",), ("v0102",)]


def test_a_promotion_without_its_lora_gguf_keeps_the_old_process_serving(engine_runtime, run_bot, db_rows, state,
                                                                        trained_adapter, lora_gguf, tmp_path, caplog):
    registry = state / "adapters"
    first = republish(trained_adapter, registry, "v0301", lora_gguf)
    runtime = engine_runtime(first)
    follower = AdapterFollower(runtime, ServingSettings(), registry, tmp_path / "training.lock")
    old = runtime.worker.process

    async def body(emulator, client):
        republish(trained_adapter, registry, "v0302")  # pointed at by hand: nothing exported it
        (registry / "current.json").write_text(json.dumps({"version": "v0302"}))
        await follower.check()
        assert runtime.adapter_version == "v0301" and runtime.worker.process is old and old.alive()
        [line] = [r for r in caplog.records if "v0302" in r.getMessage()]
        assert "has no LoRA GGUF" in line.getMessage() and "--format lora-gguf" in line.getMessage()
        assert line.exc_info is None  # one clear line, no traceback
        await emulator.user_says(GENERAL, TANJIRO, "Still you?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL)).content not in ("", APOLOGY)

    run_bot(runtime, body)
    assert db_rows("select adapter_version from messages where by_bot order by id") == [("v0301",)]


def replies_run_long(worker, on: bool = True) -> None:
    """On: 400 tokens and the end of turn never chosen, so that a fault lands while a reply is
    generated. Off: short replies that end, as usual."""
    if on:
        worker.decoding = Decoding(max_new_tokens=400, repetition_penalty=1.1)
        worker.extra_body = worker.extra_body | {"ignore_eos": True}
    else:
        worker.decoding = Decoding(max_new_tokens=48, repetition_penalty=1.1)
        worker.extra_body = {k: v for k, v in worker.extra_body.items() if k != "ignore_eos"}


async def until_generating(process) -> None:
    """Wait (up to 120 s) until one of the process's slots is generating."""

    def generating() -> bool:
        with urllib.request.urlopen(process.url + "/slots", timeout=5) as response:
            return any(slot.get("is_processing") for slot in json.load(response))

    async with asyncio.timeout(120):
        while not await asyncio.to_thread(generating):
            await asyncio.sleep(0.05)


def test_the_process_killed_mid_request_gets_an_apology_and_the_watchdog_restarts_it(engine_runtime, run_bot, db_rows,
                                                                                     state, trained_adapter, lora_gguf):
    adapter = republish(trained_adapter, state / "adapters", "v0201", lora_gguf)
    runtime = engine_runtime(adapter)
    worker = runtime.worker
    killed = worker.process
    replies_run_long(worker)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Tell me everything about your training in the mountains, "
                                                   "every single day of it.", mention_bot=True)
        await until_generating(killed)
        await asyncio.to_thread(killed.kill)
        assert (await emulator.wait_for_bot_message(GENERAL)).content == APOLOGY

        replies_run_long(worker, False)
        await emulator.user_says(GENERAL, TANJIRO, "Are you back?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1)).content not in ("", APOLOGY)
        restarted = worker.process
        assert worker.stats.restarts == 1 and restarted.pid != killed.pid and restarted.alive()
        assert restarted.lora == killed.lora and restarted.lora.name.endswith("-v0201.lora.gguf")

    run_bot(runtime, body)
    # The two user messages are stored; the one reply the engine wrote too, with its version.
    assert db_rows("select by_bot, adapter_version from messages order by id") == [
        (False, None), (False, None), (True, "v0201")]


def test_a_process_that_hangs_mid_request_is_killed_and_restarted(engine_runtime, run_bot, db_rows):
    """Frozen with SIGSTOP (alive, holding its port, answering nothing), as a deadlocked or swapping
    process would be: without the health probe every reply would wait for request_timeout_s (300 s
    here) and the process would never be replaced."""
    runtime = engine_runtime(health_timeout_s=0.5, hung_after=2)
    worker = runtime.worker
    frozen = worker.process
    replies_run_long(worker)

    async def body(emulator, client):
        await emulator.user_says(GENERAL, TANJIRO, "Tell me everything about your training in the mountains.",
                                 mention_bot=True)
        await until_generating(frozen)
        os.killpg(frozen.pid, signal.SIGSTOP)
        assert frozen.alive()
        # Found hung within 60 s, long before the 300 s request timeout.
        assert (await emulator.wait_for_bot_message(GENERAL, timeout=60)).content == APOLOGY

        replies_run_long(worker, False)
        await emulator.user_says(GENERAL, TANJIRO, "Are you back?", mention_bot=True)
        assert (await emulator.wait_for_bot_message(GENERAL, after=1, timeout=120)).content not in ("", APOLOGY)
        restarted = worker.process
        assert worker.stats.hung == 1 and worker.stats.restarts == 1
        assert not frozen.alive() and restarted.pid != frozen.pid and restarted.alive()

    run_bot(runtime, body)
    assert db_rows("select by_bot from messages order by id") == [(False,), (False,), (True,)]


def test_the_bot_starts_its_llama_server_from_the_config_and_stops_it_at_the_end(db_url, llama_server_binary, tmp_path):
    from dataclasses import replace

    from bot.service.runtime import start_runtime
    from core.settings import load_settings

    path = tmp_path / "bot.yaml"
    path.write_text(f"backend: llama-server\nllama_server:\n  binary: {llama_server_binary}\n  threads: 1\n  parallel: 2\n"
                    "  context_size: 4096\n")
    settings = load_settings(path)

    async def main():
        runtime = await start_runtime(replace(settings, decoding=Decoding(max_new_tokens=16)), None, db_url)
        process = runtime.worker.process
        try:
            assert isinstance(runtime.worker, LlamaServerEngine) and runtime.worker.remote  # the training lock unloads nothing
            assert process.alive() and runtime.worker.describe().startswith(f"llama-server at {process.url} ")
            assert runtime.worker.decoding.repetition_scope == "context"  # llama-server counts the whole context
        finally:
            await runtime.close()
        assert not process.alive()

    asyncio.run(main())
