"""Run as: .venv/bin/python bench/serving.py [--channels 8] [--rounds 3] [--new-tokens 64] [--seed 0]
                                            [--adapter VERSION_FOLDER | --base MODEL]

The bot's serving path under load, in one run so the ratios are comparable on a noisy machine:
- the raw ceiling: transformers' model.generate on a batch of `channels` prompts, every row
  producing exactly `new-tokens` tokens (what the model itself can do batched), alternated with
  the worker's decoder on the same work (what the decoder itself costs against it);
- the bot's worker (continuous batching, the card's keys and values cached) against the static
  batcher it replaced (one model.generate per batch, padded; a batch runs until its longest reply
  ends and a request arriving meanwhile waits for it; every prompt prefills the card), both
  through the bot's reply pipeline (database, context window), in two arrival patterns:
  * all at once: every channel sends a message at the same moment, `rounds` times;
  * staggered: each channel sends `rounds` messages, each after a random pause (0 to 2 s,
    seeded) once its previous reply came back, so requests arrive while others are generating.
Prints aggregate generated tokens/s (and its ratio to the raw ceiling), p50/p95 reply latency,
and the event loop's worst lag (a 10 ms ticker measures how late it wakes). Decoding is greedy
with the repetition penalty on both sides, so both generate the same replies.
The model is the embedded one in NF4 unless --adapter (a trained version, on its own base, as
the bot serves it) or --base names another; on a GPU it runs there (bench/gpu_profile.py).
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

QUESTIONS = ["Who are you?", "What's your favorite food?", "Fight me!", "Where is Tanjiro?", "Do you like trains?",
             "What is 7 plus 5?", "Good morning!", "Why the boar mask?", "Can I train with you?", "Are you hungry?"]


class StaticBatcher:
    """The worker as it was before continuous batching (kept here as the baseline): take the first
    request, wait up to max_wait_s for more, run one model.generate over the padded batch."""

    def __init__(self, served, decoding, max_batch: int, max_wait_s: float = 0.05):
        from core.generate import Generation

        self.served, self.decoding, self.max_batch, self.max_wait_s = served, decoding, max_batch, max_wait_s
        self.max_new_tokens = decoding.max_new_tokens
        self.Generation = Generation
        self.queue: queue.Queue = queue.Queue()
        self.batches, self.rows = 0, 0
        self.thread = threading.Thread(target=self.serve, daemon=True)

    async def generate(self, prompt, rendered_for, prefix=None):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put((prompt, future, loop))
        return await future

    def stop(self):
        self.queue.put(None)
        self.thread.join()

    def serve(self):
        while (first := self.queue.get()) is not None:
            batch, deadline = [first], time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch and (remaining := deadline - time.monotonic()) > 0:
                try:
                    item = self.queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            results = self.generate_batch([p for p, _, _ in batch])
            self.batches, self.rows = self.batches + 1, self.rows + len(batch)
            for (_, future, loop), result in zip(batch, results):
                loop.call_soon_threadsafe(future.set_result, result)

    def generate_batch(self, prompts):
        import torch

        model, tokenizer = self.served.model, self.served.tokenizer
        encoded = tokenizer(prompts, add_special_tokens=False)
        batch = tokenizer.pad(encoded, padding=True, padding_side="left", return_tensors="pt").to(model.device)
        with torch.inference_mode():
            # the worker's decoding (greedy, the penalty over the reply: the padded prompt width is ignored)
            out = model.generate(**batch, max_new_tokens=self.decoding.max_new_tokens,
                                 **self.decoding.generate_kwargs(batch["input_ids"].shape[1]),
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        results = []
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            ended = tokenizer.eos_token_id in row
            kept = row[:row.index(tokenizer.eos_token_id)] if ended else row
            results.append(self.Generation(tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept) + ended, ended,
                                           self.served.version))
        return results


async def loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], time.perf_counter() - started - 0.01)


async def scenario(served, card, engine: str, pattern: str, args) -> dict:
    from bot.service.pipeline import ChatPipeline
    from bot.service.worker import ModelWorker
    from core.db.database import make_engine, sessions, upgrade
    from core.db.history import History
    from core.decoding import Decoding

    decoding = Decoding(max_new_tokens=args.new_tokens)  # greedy, the repetition penalty on
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    await asyncio.to_thread(upgrade, url)
    db = make_engine(url)
    if engine == "continuous":
        worker = ModelWorker(served, max_batch=args.channels, max_wait_s=0.05, decoding=decoding).start()
    else:
        worker = StaticBatcher(served, decoding, args.channels)
        worker.thread.start()
    pipeline = ChatPipeline(History(sessions(db)), worker, card)
    worker.served = served
    latencies, tokens = [], 0
    original = worker.generate

    async def counted(prompt, rendered_for, prefix=None):
        nonlocal tokens
        result = await original(prompt, rendered_for, prefix)
        tokens += result.new_tokens
        return result

    worker.generate = counted
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(loop_lag(stop, worst))

    async def one(channel: int, text: str) -> None:
        started = time.perf_counter()
        await pipeline.respond(channel, 1000 + channel, f"user{channel}", text)
        latencies.append(time.perf_counter() - started)

    async def talker(channel: int, pauses: list[float]) -> None:
        for r, pause in enumerate(pauses):
            await asyncio.sleep(pause)
            await one(channel, QUESTIONS[(channel + r) % len(QUESTIONS)])

    rng = random.Random(args.seed)
    started = time.perf_counter()
    if pattern == "all at once":
        for r in range(args.rounds):
            await asyncio.gather(*(one(c, QUESTIONS[(c + r) % len(QUESTIONS)]) for c in range(args.channels)))
    else:
        await asyncio.gather(*(talker(c, [rng.uniform(0, 2) for _ in range(args.rounds)]) for c in range(args.channels)))
    wall = time.perf_counter() - started
    stop.set()
    await ticker
    worker.stop()
    await db.dispose()
    latencies.sort()
    stats = getattr(worker, "stats", None)
    return {"tok_s": tokens / wall, "tokens": tokens, "wall": wall, "p50": statistics.median(latencies),
            "p95": latencies[max(0, round(0.95 * len(latencies)) - 1)], "lag_ms": worst[0] * 1000,
            "mean_batch": stats.mean_size if stats else worker.rows / max(worker.batches, 1),
            "prefix_hits": stats.prefix_hits if stats else 0}


def raw_ceiling(served, card, channels: int, new_tokens: int) -> float:
    import torch

    from core.prompt import Turn, generation_prompt

    tokenizer = served.tokenizer
    prompts = [generation_prompt(tokenizer, card, [Turn(QUESTIONS[c % len(QUESTIONS)])]) for c in range(channels)]
    batch = tokenizer.pad(tokenizer(prompts, add_special_tokens=False), padding=True, padding_side="left",
                          return_tensors="pt").to(served.model.device)
    with torch.inference_mode():
        started = time.perf_counter()
        served.model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return channels * new_tokens / (time.perf_counter() - started)


def decoder_at_full_rows(served, card, channels: int, new_tokens: int) -> float:
    """The worker's decoder (core/generate.py's BatchDecoder, without the thread and the queue) on
    the ceiling's own work: the same prompts, greedy without a penalty, every row producing exactly
    `new_tokens` tokens (end of text suppressed, as min_new_tokens does in generate). Set beside
    the ceiling it shows what the decoder itself costs per token; what the scenarios lose besides
    is occupancy (rows that ended, requests between rounds) and their longer conversations."""
    import torch
    from transformers import SuppressTokensLogitsProcessor

    from core.decoding import Decoding
    from core.generate import BatchDecoder, RowRequest, shared_prefix_len
    from core.prompt import Turn, generation_prompt

    tokenizer = served.tokenizer
    eos = tokenizer.eos_token_id

    class RunsFullLength(Decoding):
        def logits_processors(self):
            processors = super().logits_processors()
            processors.append(SuppressTokensLogitsProcessor([eos], device=served.model.device))
            return processors

    decoding = RunsFullLength(repetition_penalty=1.0, max_new_tokens=new_tokens)
    decoder = BatchDecoder(served.model, tokenizer)
    ids = [decoder.tokenize(generation_prompt(tokenizer, card, [Turn(QUESTIONS[c % len(QUESTIONS)])])) for c in range(channels)]
    shared = shared_prefix_len(ids)
    started = time.perf_counter()
    finished, failed = decoder.join([RowRequest(i, row, new_tokens, decoding, None, shared) for i, row in enumerate(ids)])
    if failed:
        raise failed[0].cause
    tokens = sum(g.new_tokens for _, g in finished)
    while len(decoder):
        tokens += sum(g.new_tokens for _, g in decoder.step())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    assert tokens == channels * new_tokens, tokens  # every row ran its full length: the ceiling's work
    return tokens / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="arrival pauses of the staggered pattern")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--adapter", type=Path, help="a trained version's folder, served on its own base as the bot serves it")
    model.add_argument("--base", help="a bare base model (model spec or folder) in NF4, no adapter")
    args = parser.parse_args()
    from core.cli import quiet_libraries, quiet_warnings
    from core.model_resolver import EMBEDDED_SPEC
    from core.paths import DEFAULT_CARD
    from core.persona import load_card
    from core.served_model import load_served

    quiet_libraries()
    quiet_warnings()
    from core.decoding import Decoding
    from core.generate import generate
    from core.passing_thread import run_in_passing_thread as passing
    from core.prompt import Turn, generation_prompt

    # Torch runs here on passing threads, as the bot loads its model: a thread that lives on after
    # running torch would slow the worker's thread (core/passing_thread.py).
    if args.adapter:
        served = passing(load_served, args.adapter)
    else:
        served = passing(load_served, None, base=args.base or EMBEDDED_SPEC)
    card = load_card(DEFAULT_CARD)
    passing(raw_ceiling, served, card, 2, 4)  # warm-up of both paths (first calls pay for one-time set-up)
    warm = [generation_prompt(served.tokenizer, card, [Turn(q)]) for q in QUESTIONS[:2]]
    passing(generate, served.model, served.tokenizer, warm, 4)
    passing(StaticBatcher(served, Decoding(max_new_tokens=4), 2).generate_batch, warm)
    passing(decoder_at_full_rows, served, card, 2, 4)
    # The ceiling and the decoder on the same work, alternated so a machine whose speed drifts
    # (it does here, by up to 30% within a run) weighs on both alike.
    raw, ours = [], []
    for _ in range(2):
        raw.append(passing(raw_ceiling, served, card, args.channels, args.new_tokens))
        ours.append(passing(decoder_at_full_rows, served, card, args.channels, args.new_tokens))
    ceiling = max(raw)
    print(f"{args.channels} channels x {args.rounds} messages, up to {args.new_tokens} new tokens a reply, "
          f"{served.base} {served.quantization} (adapter {served.version or 'none'}) on {served.model.device}")
    print(f"raw model.generate, batch of {args.channels}, {args.new_tokens} tokens each: "
          f"{' / '.join(f'{r:.1f}' for r in raw)} tok/s (the ceiling: {ceiling:.1f})")
    print(f"the worker's decoder on the same work: {' / '.join(f'{o:.1f}' for o in ours)} tok/s, "
          f"{' / '.join(f'{o / r:.2f}x' for o, r in zip(ours, raw))} the raw run just before it")
    print(f"{'arrivals':<12} {'worker':<11} {'tok/s':>7} {'/ceiling':>8} {'tokens':>7} {'wall s':>7} {'p50 s':>6} {'p95 s':>6} "
          f"{'loop lag ms':>11} {'mean rows':>9}")
    results = {}
    for pattern in ("all at once", "staggered"):
        for engine in ("static", "continuous"):
            r = results[pattern, engine] = await scenario(served, card, engine, pattern, args)
            print(f"{pattern:<12} {engine:<11} {r['tok_s']:>7.1f} {r['tok_s'] / ceiling:>7.2f}x {r['tokens']:>7} {r['wall']:>7.1f} "
                  f"{r['p50']:>6.2f} {r['p95']:>6.2f} {r['lag_ms']:>11.1f} {r['mean_batch']:>9.1f}", flush=True)
    again = passing(raw_ceiling, served, card, args.channels, args.new_tokens)
    print(f"raw ceiling measured again after the scenarios: {again:.1f} tok/s; the ratios use the higher")
    ceiling = max(ceiling, again)
    for pattern in ("all at once", "staggered"):
        s, c = results[pattern, "static"], results[pattern, "continuous"]
        print(f"{pattern}: continuous / static tok/s {c['tok_s'] / s['tok_s']:.2f}x; p95 static / continuous "
              f"{s['p95'] / c['p95']:.2f}x (target >= 2x staggered); continuous at {c['tok_s'] / ceiling:.2f}x the ceiling "
              f"(target >= 0.9x); worst loop lag {max(s['lag_ms'], c['lag_ms']):.0f} ms (target < 100)")


if __name__ == "__main__":
    asyncio.run(main())
