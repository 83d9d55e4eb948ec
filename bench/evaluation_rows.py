"""Run as: .venv/bin/python bench/evaluation_rows.py [--rows 16 32 64] [--new-tokens 48] [--prompts 50]

How many rows the evaluation should generate at once (config/eval.yaml `batch_size`): the
held-out persona prompts and questions, as `trainer eval` streams them (generate() with
max_rows: the next prompt joins as a row ends), greedy, in NF4 as the gate loads the model;
each row count in the same run so the ratios are comparable on a noisy machine. Also the old
way, fixed batches of 16 each waiting for its longest reply. Prints tokens/s and the ratio to
16 rows.
"""

from __future__ import annotations

import argparse
import time

from core.cli import quiet_libraries
from core.decoding import Decoding
from core.model_resolver import EMBEDDED_SPEC, load_model, load_tokenizer
from core.paths import DEFAULT_CARD
from core.persona import load_card
from core.prompt import Turn, generation_prompt


def timed(run) -> tuple[float, int]:
    started = time.perf_counter()
    replies = run()
    return time.perf_counter() - started, sum(g.new_tokens for g in replies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--prompts", type=int, default=50)
    args = parser.parse_args()
    quiet_libraries()
    import torch

    from core.generate import generate
    from trainer.evaluation.heldout import load_heldout

    card = load_card(DEFAULT_CARD)
    tokenizer = load_tokenizer(EMBEDDED_SPEC)
    model = load_model(EMBEDDED_SPEC, "nf4")
    held = load_heldout(card)
    prompts = ([generation_prompt(tokenizer, card, item.context) for item in held.persona]
               + [generation_prompt(tokenizer, card, [Turn(q.question)]) for q in held.qa])[:args.prompts]
    greedy = Decoding(temperature=0.0, repetition_penalty=1.15)
    print(f"{len(prompts)} held-out prompts, up to {args.new_tokens} new tokens, greedy, NF4, torch threads {torch.get_num_threads()}")
    generate(model, tokenizer, prompts[:4], 8, greedy)  # warm-up

    def fixed_batches():  # the evaluation before streaming: each batch waits for its longest reply
        out = []
        for start in range(0, len(prompts), 16):
            out += generate(model, tokenizer, prompts[start:start + 16], args.new_tokens, greedy)
        return out

    results = {"fixed batches of 16": timed(fixed_batches)}
    for rows in args.rows:
        results[f"streamed, {rows} rows"] = timed(lambda: generate(model, tokenizer, prompts, args.new_tokens, greedy, max_rows=rows))
    base = results.get("streamed, 16 rows") or next(iter(results.values()))
    base_rate = base[1] / base[0]
    print(f"{'how':<22} {'seconds':>8} {'tokens':>7} {'tok/s':>7} {'vs 16 rows':>11}")
    for how, (seconds, tokens) in results.items():
        print(f"{how:<22} {seconds:>8.1f} {tokens:>7} {tokens / seconds:>7.1f} {tokens / seconds / base_rate:>10.2f}x")


if __name__ == "__main__":
    main()
