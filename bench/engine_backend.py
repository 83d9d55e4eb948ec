"""Run as: .venv/bin/python bench/engine_backend.py --adapter ADAPTER_DIR [--engine vllm|llama-server]
                                           [--rounds 3] [--new-tokens 64] [--no-local]

The bot through an engine backend against the engine's own figures, in the same run, with the
adapter on: one stream (one channel, one message after another) and eight channels at once.
- `--engine vllm` (backend: openai): `make vllm` must have built the engine's virtualenv; the
  bench starts vLLM (CPU) on the embedded model itself and stops it at the end.
- `--engine llama-server` (backend: llama-server): `make llama.cpp` must have built llama-server;
  the bot's own LlamaServerEngine starts it on the embedded model's GGUF with the adapter's LoRA
  GGUF (exported by the trainer's export into a temporary folder first) and `llama_server:` from
  config/bot.yaml (threads, slots), and stops it at the end.

To compare like with like, every request the bot sent in its measured pass is replayed raw to the
engine (same prompts, same decoding settings, same concurrency), so the ratio is the bot's own
cost (database, context window, rendering, HTTP client). The engine alone gets as many streams at
once as the bot has channels, at most as many in flight as the bot may have (llama-server: its
slots), and a latency includes the wait for a free slot on both sides. Order: a warm-up pass through the bot
(it also fills the engine's prefix cache), the engine alone, then the bot again, each in fresh
channels with the same messages. With --no-local it skips the in-process worker on the same
adapter and messages (the default backend) for comparison.

Prints generated tokens/s and p50 reply latency per case, and bot/engine ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTIONS = ["Who are you?", "What's your favorite food?", "Fight me!", "Where is Tanjiro?", "Do you like trains?",
             "What is 7 plus 5?", "Good morning!", "Why the boar mask?", "Can I train with you?", "Are you hungry?"]


async def pipeline_on(worker, card):
    from bot.service.pipeline import ChatPipeline
    from core.db.database import make_engine, sessions, upgrade
    from core.db.history import History

    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    await asyncio.to_thread(upgrade, url)
    db = make_engine(url)
    return ChatPipeline(History(sessions(db)), worker, card), db


async def through_bot(worker, card, channels: int, rounds: int, first_channel: int, bodies: list | None = None) -> dict:
    """Messages through the real pipeline: `channels` channels at once, `rounds` messages each."""
    pipeline, db = await pipeline_on(worker, card)
    tokens, latencies = 0, []
    original = worker.generate

    async def counted(prompt, rendered_for, *args, **kwargs):  # whatever the worker's generate takes (prefix, seed)
        nonlocal tokens
        result = await original(prompt, rendered_for, *args, **kwargs)
        tokens += result.new_tokens
        return result

    worker.generate = counted
    if bodies is not None:  # record what the engine backend sends, to replay it to the engine alone
        request = worker._request

        async def recording(method, path, body, timeout_s, base_url=None):
            if path == "/v1/completions":
                bodies.append(body)
            return await request(method, path, body, timeout_s, base_url)

        worker._request = recording

    async def channel(c: int) -> None:
        for r in range(rounds):
            started = time.perf_counter()
            reply = await pipeline.respond(first_channel + c, 1000 + c, f"user{c}", QUESTIONS[(c + r) % len(QUESTIONS)])
            assert reply.from_model, f"no model reply: {reply.text}"
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(channel(c) for c in range(channels)))
    elapsed = time.perf_counter() - started
    worker.generate = original
    if bodies is not None:
        worker._request = request
    await db.dispose()
    return {"tokens": tokens, "seconds": elapsed, "p50": statistics.median(latencies)}


async def engine_alone(url: str, bodies: list[dict], channels: int, in_flight: int) -> dict:
    """The same request bodies sent straight to the engine: `channels` sources at once, each sending
    its channel's requests one after another, at most `in_flight` of them at the engine (as the
    bot's client allows). A request's latency runs from the moment its source is ready to send it,
    the wait for a free slot included, as a bot user's does: with 8 channels and 4 llama-server
    slots, half the messages wait for a reply to finish before theirs starts, on both sides."""
    import aiohttp

    tokens, latencies = 0, []
    streams = [bodies[c::channels] for c in range(channels)]
    slots = asyncio.Semaphore(in_flight)

    async def stream(session, own):
        nonlocal tokens
        for body in own:
            started = time.perf_counter()
            async with slots:
                async with session.post(url + "/v1/completions", json=body) as response:
                    answer = await response.json()
            tokens += answer["usage"]["completion_tokens"]
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(stream(session, own) for own in streams))
        elapsed = time.perf_counter() - started
    return {"tokens": tokens, "seconds": elapsed, "p50": statistics.median(latencies)}


def line(name: str, r: dict) -> str:
    return f"  {name:<34} {r['tokens'] / r['seconds']:7.1f} tok/s   p50 {r['p50']:6.2f} s   ({r['tokens']} tokens in {r['seconds']:.1f} s)"


async def started_vllm(info, decoding):
    """vLLM (CPU) on the embedded model with the adapter loadable, and the bot's client for it;
    returns (engine, url, stop)."""
    from bot.service.engine_client import OpenAIEngine, remote_served
    from core.model_resolver import embedded_folder
    from core.settings import OpenAIEngineSettings
    from tools.vllm_engine import VLLMEngine

    vllm = await asyncio.to_thread(VLLMEngine(embedded_folder()).start)
    print(f"vLLM (CPU) started in {vllm.startup_s:.0f} s at {vllm.url}")
    try:
        settings = OpenAIEngineSettings(base_url=vllm.url, request_timeout_s=600, max_in_flight=8)
        engine = OpenAIEngine(settings, await asyncio.to_thread(remote_served, info, info.base_model), decoding=decoding)
    except BaseException:
        await asyncio.to_thread(vllm.stop)
        raise
    return engine, vllm.url, vllm.stop


async def started_llama_server(info, decoding, scratch: Path):
    """The bot's llama-server backend serving the adapter (its LoRA GGUF exported first), with
    config/bot.yaml's llama_server settings; returns (engine, url, stop)."""
    from dataclasses import replace

    from bot.service.engine_client import remote_served
    from bot.service.llama_server_engine import LlamaServerEngine
    from core.passing_thread import in_passing_thread
    from core.settings import load_settings
    from trainer.export.export import export

    exports = scratch / "exports"
    started = time.perf_counter()
    await in_passing_thread(export, info.path, ["lora-gguf"], exports / info.version)  # torch: see main_async
    settings = replace(load_settings().llama_server, request_timeout_s=600)
    engine = LlamaServerEngine(settings, await asyncio.to_thread(remote_served, info, info.base_model), decoding=decoding,
                               exports=exports, log_dir=scratch / "logs")
    await asyncio.to_thread(engine.start)
    print(f"llama-server (-t {settings.threads}, -np {settings.parallel}) exported and started in "
          f"{time.perf_counter() - started:.0f} s at {engine.process.url}")
    return engine, engine.process.url, lambda: None  # the engine's close() stops its process


async def main_async(args) -> None:
    from dataclasses import replace

    from core.decoding import Decoding
    from core.paths import DEFAULT_CARD
    from core.persona import load_card
    from core.registry import read_adapter

    card = load_card(DEFAULT_CARD)
    info = read_adapter(args.adapter)
    results: dict[str, dict] = {}
    decoding = Decoding(max_new_tokens=args.new_tokens, repetition_penalty=1.1)
    engine_name = "vLLM" if args.engine == "vllm" else "llama-server"
    scratch = Path(tempfile.mkdtemp(prefix="engine-bench-"))  # the exported LoRA GGUF and the server's logs
    try:
        await measure_engine(args, info, card, decoding, engine_name, scratch, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not args.no_local:
        from bot.service.worker import ModelWorker
        from core.passing_thread import in_passing_thread
        from core.served_model import load_served

        # Torch runs on threads that end (the export above, this load), as in the bot: a thread that
        # lives on after running torch slows the worker's thread (core/passing_thread.py).
        served = await in_passing_thread(load_served, info)
        for channels in (1, 8):
            label = "one stream" if channels == 1 else f"{channels} channels"
            # the same decoding the engine got: its penalty counts the whole context
            worker = ModelWorker(served, decoding=replace(decoding, repetition_scope="context")).start()
            await through_bot(worker, card, channels, args.rounds, 2000 + channels)  # warm-up, as the engine had
            results[f"bot, in-process worker {label}"] = await through_bot(worker, card, channels, args.rounds, 1000 + channels)
            await worker.close()
    print("Results (adapter on):")
    for case, r in results.items():
        print(line(case, r))
    for label in ("one stream", "8 channels"):
        bot, alone = results[f"bot via {engine_name} {label}"], results[f"engine {label}"]
        ratio = (bot["tokens"] / bot["seconds"]) / (alone["tokens"] / alone["seconds"])
        print(f"  ratio bot via {engine_name} / engine alone, {label}: {ratio:.2f}x")
        local = results.get(f"bot, in-process worker {label}")
        if local:
            print(f"  ratio bot via {engine_name} / in-process worker, {label}: "
                  f"{(bot['tokens'] / bot['seconds']) / (local['tokens'] / local['seconds']):.2f}x")


async def measure_engine(args, info, card, decoding, engine_name: str, scratch: Path, results: dict) -> None:
    """The bot through the engine, the engine alone on the same requests, the bot again; one
    stream, then eight channels at once."""
    if args.engine == "vllm":
        engine, url, stop = await started_vllm(info, decoding)
    else:
        engine, url, stop = await started_llama_server(info, decoding, scratch)
    print(f"adapter {info.version}; {args.rounds} messages per channel, up to {args.new_tokens} new tokens")
    try:
        channel = 0
        for channels in (1, 8):
            label = "one stream" if channels == 1 else f"{channels} channels"
            await through_bot(engine, card, channels, args.rounds, channel)  # warm-up
            channel += 100
            bodies: list = []
            bot = await through_bot(engine, card, channels, args.rounds, channel, bodies)
            channel += 100
            if not bodies:
                raise SystemExit("the bot sent the engine no completion request")
            # As many sources as channels, and as many requests in flight as the bot may have
            # (llama-server: its slots), so both sides wait in the same queue and their p50s compare.
            alone = await engine_alone(url, bodies, channels, min(channels, engine.settings.max_in_flight))
            bot_again = await through_bot(engine, card, channels, args.rounds, channel)
            channel += 100
            # The two bot passes bracket the engine's: their mean cancels a drift of the machine's load.
            mean = {k: (bot[k] + bot_again[k]) / 2 for k in bot}
            results[f"engine {label}"], results[f"bot via {engine_name} {label}"] = alone, mean
    finally:
        try:
            await engine.close()
        finally:
            await asyncio.to_thread(stop)


def main() -> None:
    parser = argparse.ArgumentParser(description="The bot through an engine backend against the engine alone, same requests.")
    parser.add_argument("--adapter", type=Path, required=True, help="adapter folder (a published version)")
    parser.add_argument("--engine", choices=["vllm", "llama-server"], default="vllm", help="the engine backend to measure")
    parser.add_argument("--rounds", type=int, default=3, help="messages per channel")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--no-local", action="store_true", help="skip the in-process worker comparison")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
