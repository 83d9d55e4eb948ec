"""Run as: .venv/bin/python bench/engine_batching.py [--channels 8] [--rounds 3] [--new-tokens 64]

Eight channels talking at once through the bot's reply pipeline (database, context window, model
worker), with the worker batching across channels against the same worker one request at a time
(max_batch=1), in one run. Prints aggregate generated tokens/s, p50/p95 reply latency, and the
event loop's worst lag while the model generates (a 10 ms ticker measures how late it wakes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time


QUESTIONS = ["Who are you?", "What's your favorite food?", "Fight me!", "Where is Tanjiro?", "Do you like trains?",
             "What is 7 plus 5?", "Good morning!", "Why the boar mask?", "Can I train with you?", "Are you hungry?"]


async def loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], time.perf_counter() - started - 0.01)


async def scenario(served, card, max_batch: int, channels: int, rounds: int, new_tokens: int) -> dict:
    from bot.service.pipeline import ChatPipeline
    from bot.service.worker import ModelWorker
    from core.db.database import make_engine, sessions, upgrade
    from core.db.history import History

    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    await asyncio.to_thread(upgrade, url)
    db = make_engine(url)
    worker = ModelWorker(served, max_batch=max_batch, max_wait_s=0.05, max_new_tokens=new_tokens).start()
    pipeline = ChatPipeline(History(sessions(db)), worker, card)
    latencies, tokens = [], 0
    original = worker.generate

    async def counted(*args, **kwargs):  # whatever the worker's generate takes (card prefix, seed)
        nonlocal tokens
        result = await original(*args, **kwargs)
        tokens += result.new_tokens
        return result

    worker.generate = counted
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(loop_lag(stop, worst))

    async def one(channel: int, text: str) -> None:
        started = time.perf_counter()
        await pipeline.respond(channel, 1000 + channel, f"user{channel}", text)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(*(one(c, QUESTIONS[(c + r) % len(QUESTIONS)]) for c in range(channels)))
    wall = time.perf_counter() - started
    stop.set()
    await ticker
    worker.stop()
    await db.dispose()
    latencies.sort()
    return {"tok_s": tokens / wall, "tokens": tokens, "wall": wall, "p50": statistics.median(latencies),
            "p95": latencies[max(0, round(0.95 * len(latencies)) - 1)], "lag_ms": worst[0] * 1000,
            "mean_batch": worker.stats.mean_size, "largest_batch": worker.stats.largest}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    from core.cli import quiet_libraries, quiet_warnings
    from core.model_resolver import EMBEDDED_SPEC
    from core.passing_thread import run_in_passing_thread
    from core.paths import DEFAULT_CARD
    from core.persona import load_card
    from core.served_model import load_served

    quiet_libraries()
    quiet_warnings()
    # Loaded on a thread that ends, as the bot loads it: a thread that lives on after running torch
    # slows the worker's thread (core/passing_thread.py).
    served, card = run_in_passing_thread(load_served, None, base=EMBEDDED_SPEC), load_card(DEFAULT_CARD)
    print(f"{args.channels} channels x {args.rounds} rounds, up to {args.new_tokens} new tokens a reply, {EMBEDDED_SPEC} NF4")
    print(f"{'worker':<16} {'tok/s':>7} {'tokens':>7} {'wall s':>7} {'p50 s':>6} {'p95 s':>6} {'worst loop lag ms':>18}")
    results = {}
    for name, max_batch in (("one at a time", 1), ("batched", args.channels)):
        r = results[name] = await scenario(served, card, max_batch, args.channels, args.rounds, args.new_tokens)
        print(f"{name:<16} {r['tok_s']:>7.1f} {r['tokens']:>7} {r['wall']:>7.1f} {r['p50']:>6.2f} {r['p95']:>6.2f} {r['lag_ms']:>18.1f}")
    print(f"aggregate tokens/s, batched / one at a time: {results['batched']['tok_s'] / results['one at a time']['tok_s']:.2f}x "
          f"(target >= 3x); batches: mean {results['batched']['mean_batch']:.1f}, largest {results['batched']['largest_batch']}")


if __name__ == "__main__":
    asyncio.run(main())
