"""The engine backend (bot/service/engine_client.py) through the real reply pipeline and a real
database, against a small fake OpenAI-compatible server on loopback (tests/fake_engine.py): the
assertions here (what is sent, what is stored, what users get when the engine is down, slow or
busy, how adapters are loaded and unloaded) do not depend on the model's text. The real vLLM
engine's end-to-end tests are tests/service/test_vllm_engine_e2e.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from bot.service.adapter_follower import AdapterFollower
from bot.service.engine_client import OpenAIEngine, completion_request, remote_served
from bot.service.pipeline import APOLOGY, WAIT_YOUR_TURN, ChatPipeline
from core.context import fit_prompt, turns_from_history
from core.db.database import make_engine, sessions
from core.db.history import History
from core.decoding import Decoding
from core.errors import UserError
from core.settings import ChatSettings, OpenAIEngineSettings, ServingSettings, load_settings
from core.training_lock import training_lock
from tests.fake_engine import BASE, FakeEngine


def make_adapter(registry, version: str):
    """An adapter folder as the trainer publishes it (the fake engine never reads the weights)."""
    folder = registry / version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "manifest.json").write_text(json.dumps({"version": version, "base_model": "smollm2-135m",
                                                      "quantization": "nf4", "prompt_format": "chat"}))
    return folder


def point_to(registry, version: str) -> None:
    (registry / "current.json").write_text(json.dumps({"version": version}))


@pytest.fixture
def engine_setup(db_url, persona, model_cache):
    """engine_setup(fake, adapter=None, **settings) -> (pipeline, engine, history) on the test's database."""
    made = []

    def make(fake: FakeEngine, adapter=None, *, max_queue: int = 32, **overrides):
        settings = OpenAIEngineSettings(base_url=fake.url, **({"connect_timeout_s": 1.0, "request_timeout_s": 5.0} | overrides))
        engine = OpenAIEngine(settings, remote_served(adapter, "smollm2-135m"), decoding=Decoding(max_new_tokens=40, repetition_penalty=1.1),
                             max_queue=max_queue)
        db = make_engine(db_url)
        history = History(sessions(db))
        made.append((engine, db))
        return ChatPipeline(history, engine, persona, settings=ChatSettings()), engine, history

    yield make


def run(coroutine_function):
    """Run an async test body with its own event loop (the fake server lives in it)."""
    return asyncio.run(coroutine_function())


def test_the_request_is_the_rendered_prompt_sent_raw_with_the_decoding_settings():
    body = completion_request("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "v0003", max_tokens=160,
                              stop_token_id=2, stop_text="<|im_end|>")
    assert body["prompt"] == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" and body["model"] == "v0003"
    # Greedy with a repetition penalty by default: greedy alone loops on vLLM.
    assert body["temperature"] == 0.0 and body["repetition_penalty"] == 1.1 and body["max_tokens"] == 160
    assert body["stop_token_ids"] == [2] and body["stop"] == ["<|im_end|>"] and "seed" not in body
    sampled = completion_request("p", "base", max_tokens=8, stop_token_id=None, stop_text=None, temperature=0.7,
                                 top_p=0.9, repetition_penalty=1.05, seed=11)
    assert (sampled["temperature"], sampled["top_p"], sampled["repetition_penalty"], sampled["seed"]) == (0.7, 0.9, 1.05, 11)


def test_a_reply_through_the_engine_is_rendered_by_the_one_builder_and_stored_with_its_version(engine_setup, persona,
                                                                                               tmp_path, db_rows):
    adapter = make_adapter(tmp_path / "adapters", "v0003")

    async def body():
        fake = await FakeEngine().start()
        pipeline, engine, history = engine_setup(fake, adapter)
        try:
            reply = await pipeline.respond(1, 42, "Tanjiro", "Who are you?")
            assert reply.from_model and reply.text == "HAH! Lord Inosuke heard you!"
            [sent] = fake.completions
            assert sent["model"] == "v0003" and fake.calls == [("load", "v0003")]  # loaded before its first use
            turns = turns_from_history(await history.recent(1, 60))[:1]
            expected, _ = fit_prompt(engine.served.tokenizer, persona, turns, 1024, "chat")
            assert sent["prompt"] == expected  # the prompt builder's text, no template applied by the engine
            assert sent["stop_token_ids"] == [engine.served.tokenizer.eos_token_id]
        finally:
            await engine.close()
            await fake.stop()

    run(body)
    assert db_rows("select content, by_bot, adapter_version from messages order by id") == [
        ("Who are you?", False, None), ("HAH! Lord Inosuke heard you!", True, "v0003")]


def test_the_bare_base_is_asked_by_the_engines_name_for_it(engine_setup, db_rows):
    async def body():
        fake = await FakeEngine().start()
        pipeline, engine, _ = engine_setup(fake, None)
        try:
            assert (await pipeline.respond(1, 42, "Tanjiro", "Hi")).from_model
            assert fake.completions[0]["model"] == BASE and BASE in engine.describe()
        finally:
            await engine.close()
            await fake.stop()

    run(body)
    assert db_rows("select adapter_version from messages where by_bot") == [(None,)]


def test_requests_in_flight_are_bounded_and_each_channel_keeps_its_order(engine_setup):
    async def body():
        fake = await FakeEngine().start()
        fake.delay_s = 0.15
        pipeline, engine, history = engine_setup(fake, None, max_in_flight=3)
        try:
            async def channel(c):
                for n in range(2):
                    await pipeline.respond(c, 42, "Tanjiro", f"channel {c} message {n}")

            await asyncio.gather(*(channel(c) for c in range(8)))
            assert fake.most_in_flight == 3 and engine.stats.largest_in_flight == 3
            assert engine.stats.requests == 16 and engine.queue_length == 0
            for c in range(8):
                prompts = [p["prompt"] for p in fake.completions if f"channel {c} message" in p["prompt"]]
                # The second request of a channel was sent after the first reply, which its prompt contains.
                assert len(prompts) == 2 and "message 1" not in prompts[0]
                assert "message 0" in prompts[1] and prompts[1].count("HAH! Lord Inosuke heard you!") == 1
        finally:
            await engine.close()
            await fake.stop()

    run(body)


def test_beyond_the_queue_users_are_told_in_character_to_wait(engine_setup):
    async def body():
        fake = await FakeEngine().start()
        fake.delay_s = 0.3
        pipeline, engine, _ = engine_setup(fake, None, max_queue=2, max_in_flight=1)
        try:
            replies = await asyncio.gather(*(pipeline.respond(c, 42, "Tanjiro", "Hey!") for c in range(5)))
            assert [r.text for r in replies].count(WAIT_YOUR_TURN) == 3
            assert sum(r.from_model for r in replies) == 2
        finally:
            await engine.close()
            await fake.stop()

    run(body)


def test_down_slow_and_busy_engines_get_in_character_answers_and_replies_resume_when_it_is_back(engine_setup, tmp_path,
                                                                                               db_rows):
    adapter = make_adapter(tmp_path / "adapters", "v0003")

    async def body():
        fake = FakeEngine()  # not started: down
        pipeline, engine, _ = engine_setup(fake, adapter, request_timeout_s=0.5)
        try:
            down = await pipeline.respond(1, 42, "Tanjiro", "Are you there?")
            assert down == dataclasses.replace(down, text=APOLOGY, from_model=False)
            await fake.start()
            fake.mode = "slow"
            assert (await pipeline.respond(1, 42, "Tanjiro", "Hello?")).text == APOLOGY
            fake.mode = "busy"
            assert (await pipeline.respond(1, 42, "Tanjiro", "HELLO?")).text == WAIT_YOUR_TURN
            fake.mode = "ok"
            back = await pipeline.respond(1, 42, "Tanjiro", "There you are!")
            assert back.from_model and fake.completions[-1]["model"] == "v0003"
            # Killed and restarted: the engine forgot the adapter; it is loaded again and the reply comes.
            await fake.stop()
            await fake.start()
            again = await pipeline.respond(1, 42, "Tanjiro", "And now?")
            assert again.from_model and engine.stats.adapter_reloads == 1
            assert fake.calls == [("load", "v0003"), ("load", "v0003")]
            assert engine.stats.failures == 2 and engine.stats.busy == 1
        finally:
            await engine.close()
            await fake.stop()

    run(body)
    # Every user message was stored, whatever happened to the engine; only model replies are stored as replies.
    assert db_rows("select content, adapter_version from messages where by_bot order by id") == [
        ("HAH! Lord Inosuke heard you!", "v0003"), ("HAH! Lord Inosuke heard you!", "v0003")]
    assert len(db_rows("select id from messages where not by_bot")) == 5


class _Runtime:
    """What the follower reads of a runtime."""

    def __init__(self, worker):
        self.worker = worker

    @property
    def adapter_version(self):
        return self.worker.version


def test_a_promotion_loads_the_new_adapter_switches_then_unloads_the_old_and_training_never_unloads(engine_setup,
                                                                                                   tmp_path, db_rows):
    registry = tmp_path / "adapters"
    first, second = make_adapter(registry, "v0001"), make_adapter(registry, "v0002")
    point_to(registry, "v0001")
    lock = tmp_path / "training.lock"

    async def body():
        fake = await FakeEngine().start()
        fake.delay_s = 0.3
        pipeline, engine, _ = engine_setup(fake, first)
        follower = AdapterFollower(_Runtime(engine), ServingSettings(release_during_training=True), registry, lock)
        try:
            assert (await pipeline.respond(1, 42, "Tanjiro", "One")).from_model
            point_to(registry, "v0002")
            # A reply to v0001 is in flight when the promotion is seen: it finishes on v0001,
            # and v0001 is unloaded only after it.
            in_flight = asyncio.create_task(pipeline.respond(2, 42, "Tanjiro", "Two"))
            await asyncio.sleep(0.1)
            with training_lock(lock):
                await follower.check()
                assert engine.version == "v0002" and not follower.released  # the lock unloads nothing remote
                assert (await in_flight).from_model
                assert fake.calls == [("load", "v0001"), ("load", "v0002"), ("unload", "v0001")]
                assert (await pipeline.respond(1, 42, "Tanjiro", "Three")).from_model
            assert [c["model"] for c in fake.completions] == ["v0001", "v0001", "v0002"]
            point_to(registry, "v0001")  # a rollback works the same way
            await follower.check()
            assert fake.calls[-2:] == [("load", "v0001"), ("unload", "v0002")] and set(fake.adapters) == {"v0001"}
            assert follower.swaps == [("v0001", "v0002"), ("v0002", "v0001")]
        finally:
            await engine.close()
            await fake.stop()

    run(body)
    assert db_rows("select content, adapter_version from messages where by_bot order by id") == [
        ("HAH! Lord Inosuke heard you!", "v0001"), ("HAH! Lord Inosuke heard you!", "v0001"),
        ("HAH! Lord Inosuke heard you!", "v0002")]


def test_an_adapter_the_engine_refuses_leaves_the_old_one_serving(engine_setup, tmp_path):
    registry = tmp_path / "adapters"
    first = make_adapter(registry, "v0001")
    make_adapter(registry, "v0002")
    point_to(registry, "v0002")

    async def body():
        fake = await FakeEngine().start()

        async def refuse(request):
            from aiohttp import web

            return web.json_response({"error": {"message": "Loading lora v0002 failed: rank 64 > max_lora_rank 16"}}, status=400)

        pipeline, engine, _ = engine_setup(fake, first)
        fake._load = refuse
        await fake.stop()
        await fake.start()  # with the refusing handler
        follower = AdapterFollower(_Runtime(engine), ServingSettings(), registry, tmp_path / "training.lock")
        try:
            await follower.check()
            assert engine.version == "v0001" and follower._failed == "v0002"
        finally:
            await engine.close()
            await fake.stop()

    run(body)


@pytest.mark.parametrize("text, message", [
    ("backend: vllm\n", "backend: 'vllm' is not one of 'local', 'openai', 'llama-server'"),
    ("openai:\n  base_url: localhost:8000\n", "openai.base_url: expected http://host:port"),
    ("openai:\n  base_url: http://h:8000/v1\n", "openai.base_url: leave /v1 out"),
    ("openai:\n  max_in_flight: 0\n", "openai.max_in_flight: must be at least 1, got 0"),
    ("openai:\n  request_timeout_s: 0\n", "openai.request_timeout_s: must be more than 0 seconds"),
    ("openai:\n  top_p: 0.9\n", "unknown key 'openai.top_p'"),  # decoding: is shared by both backends
    ("openai:\n  api_kye_env: X\n", "unknown key 'openai.api_kye_env'"),
    ("backend: openai\nopenai:\n  api_key_env: INOSUKE_TEST_UNSET_KEY\n",
     "openai.api_key_env: the environment variable INOSUKE_TEST_UNSET_KEY is not set"),
])
def test_engine_settings_are_checked_with_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bot.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="^" + str(path).replace(".", r"\.") + ": ") as error:
        load_settings(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_shipped_config_reads_and_the_api_key_comes_from_the_named_variable(monkeypatch, tmp_path):
    settings = load_settings()
    assert settings.backend == "local" and settings.decoding.repetition_penalty == 1.15 and settings.openai.api_key_env is None
    monkeypatch.setenv("INOSUKE_TEST_KEY", "sk-test")
    path = tmp_path / "bot.yaml"
    path.write_text("backend: openai\nopenai:\n  api_key_env: INOSUKE_TEST_KEY\n")
    settings = load_settings(path)
    engine = OpenAIEngine(settings.openai, None)
    assert engine.api_key == "sk-test"


def test_the_vllm_engine_computes_in_bf16_only_where_the_cpu_has_it(monkeypatch):
    """bf16 without native support is emulated: on an AVX2-only CPU vLLM served eight streams at
    26.6 tok/s in bfloat16 against 75.2 in float32."""
    import tools.vllm_engine as vllm_engine

    from bitsandbytes.functional import has_avx512bf16

    assert vllm_engine.cpu_dtype(native_bf16=False) == "float32"
    assert vllm_engine.cpu_dtype(native_bf16=True) == "bfloat16"
    assert vllm_engine.cpu_dtype() == ("bfloat16" if has_avx512bf16() else "float32")  # this machine's CPU
    monkeypatch.setattr(vllm_engine, "python", lambda: vllm_engine.Path("python"))
    monkeypatch.setattr(vllm_engine, "cpu_dtype", lambda: "float32")
    command = vllm_engine.VLLMEngine(vllm_engine.Path("model"), port=1).command()
    assert command[command.index("--dtype") + 1] == "float32"  # the engine is started in the dtype chosen here


def test_the_engine_shown_to_anyone_carries_no_credentials():
    """/inosuke (anyone may run it, in DMs too) shows the engine; a base_url with a user name,
    a password or a key in its query must not reach the channel or the log."""
    for url, shown in (("https://bot:s3cret@10.0.0.5:8000/v1?api_key=k3y", "https://10.0.0.5:8000"),
                       ("http://[::1]:8000", "http://[::1]:8000"), ("http://engine", "http://engine")):
        engine = OpenAIEngine(OpenAIEngineSettings(base_url=url), served=None)
        described = engine.describe()
        assert described.startswith(f"OpenAI-compatible engine at {shown} ")
        assert "s3cret" not in described and "k3y" not in described and "bot" not in described
