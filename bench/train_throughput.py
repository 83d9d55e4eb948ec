"""Run as: .venv/bin/python bench/train_throughput.py [--samples 48] [--rounds 1]

Training throughput of the smollm2-cpu recipe against a naive baseline, same model (SmolLM2 in
NF4 with the same LoRA) and the same training samples, each configuration in its own process so
that peak memory is its own:
- shared card: trainer/qlora.py as `python -m trainer train` runs it by default: the samples
  packed behind one copy of their persona card (trainer/card_packing.py), loss only on the
  persona's replies;
- packed: the same recipe with `shared_card=false`: TRL's best-fit packing, padding-free, the card
  repeated in every sample (the recipe before shared-card packing);
- naive: plain transformers Trainer, every sample padded to 512 tokens, loss on every token.
"Useful" tokens are the persona-reply tokens (the ones worth learning), counted the same way for
all; each configuration processes the same samples once. With --rounds N the three run N times in
turn and the ratios of each round are printed, then their median: on a shared machine a round's
three runs see about the same load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAIVE_LENGTH = 512  # the naive baseline pads every sample to this (as it always has, whatever the profile)
KINDS = ("naive", "packed", "card")


def run_one(kind: str, samples: int, row_tokens: int | None = None) -> dict:
    from core.cli import quiet_libraries, quiet_warnings

    quiet_libraries()
    quiet_warnings()
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    from core.model_resolver import load_model, load_tokenizer
    from core.files import read_jsonl
    from trainer.encode import IGNORE, encode
    from trainer.profile import load_profile
    from trainer.qlora import CountsTokens, keep_4bit_layers_differentiable, lora_config, make_trainer

    rows_setting = [f"max_seq_len={row_tokens}"] if row_tokens else []  # the packed recipes' row length
    profile = load_profile("smollm2-cpu", ["eval_max_samples=2", *rows_setting])
    tokenizer = load_tokenizer(profile.model)
    rows = read_jsonl(ROOT / "state" / "dataset" / "train.jsonl")[:samples]
    useful = sum(sum(l != IGNORE for l in encode(tokenizer, r, "chat")["labels"]) for r in rows)
    model = load_model(profile.model, profile.quantization)
    if kind in ("card", "packed"):
        if kind == "packed":
            profile = load_profile("smollm2-cpu", ["eval_max_samples=2", "shared_card=false", *rows_setting])
        trainer = make_trainer(model, tokenizer, rows, rows[:2], profile, f"/tmp/bench-{kind}")
        steps = len(trainer.get_train_dataloader())  # one pass over the packed rows
    else:
        set_seed(0)
        keep_4bit_layers_differentiable(model)
        model = get_peft_model(model, lora_config(profile))
        encoded = tokenizer([tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows],
                            padding="max_length", max_length=NAIVE_LENGTH, add_special_tokens=False)
        labels = [[t if m else IGNORE for t, m in zip(ids, mask)] for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
        data = Dataset.from_dict({**encoded, "labels": labels})

        class NaiveTrainer(CountsTokens, Trainer):
            pass

        batch = 2  # two padded rows of 512: the recipe's packed row holds about as many real tokens
        steps = -(-len(rows) // batch)
        trainer = NaiveTrainer(model=model, train_dataset=data, args=TrainingArguments(
            output_dir="/tmp/bench-naive", per_device_train_batch_size=batch, max_steps=steps, learning_rate=profile.learning_rate,
            optim=profile.optimizer, report_to=[], save_strategy="no", logging_steps=10, disable_tqdm=True, seed=0))
    trainer.args.max_steps = steps
    trainer.args.eval_strategy = "no"
    trainer.args.save_strategy = "no"
    trainer.args.load_best_model_at_end = False
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    counts = trainer.token_counts
    return {"kind": kind, "samples": len(rows), "steps": steps, "wall_s": wall, "useful_tokens": useful,
            "useful_tok_s": useful / wall, "positions": counts.positions, "padding_fraction": counts.padding_fraction,
            "non_padding_tok_s": (counts.positions - counts.padding) / wall,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "threads": torch.get_num_threads()}


def main() -> None:
    import statistics

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--row-tokens", type=int, help="packed row length of the two packed recipes (default: the profile's max_seq_len)")
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.samples, args.row_tokens)))
        return
    if not (ROOT / "state" / "dataset" / "train.jsonl").is_file():
        subprocess.run([sys.executable, "-m", "trainer", "data", "build"], cwd=ROOT, check=True, capture_output=True)
    rounds = []
    for _ in range(args.rounds):
        results = {}
        for kind in KINDS:
            rows = ["--row-tokens", str(args.row_tokens)] if args.row_tokens else []
            done = subprocess.run([sys.executable, __file__, "--one", kind, "--samples", str(args.samples), *rows],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                sys.exit(done.stderr)
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        rounds.append(results)
    names = {"naive": "naive", "packed": "packed (TRL)", "card": "shared card"}
    print(f"smollm2-cpu recipe vs naive baseline, {args.samples} identical training samples, "
          f"{rounds[0]['card']['threads']} threads, {args.rounds} round(s)")
    print(f"{'':13} {'steps':>5} {'wall s':>7} {'padding':>8} {'non-pad tok/s':>14} {'useful tok/s':>13} {'peak RSS GiB':>13}")
    for number, results in enumerate(rounds, start=1):
        for kind in KINDS:
            r = results[kind]
            print(f"{names[kind]:13} {r['steps']:>5} {r['wall_s']:>7.1f} {100 * r['padding_fraction']:>7.1f}% "
                  f"{r['non_padding_tok_s']:>14.0f} {r['useful_tok_s']:>13.1f} {r['peak_rss_gib']:>13.2f}")
        useful = {kind: results[kind]["useful_tok_s"] for kind in KINDS}
        print(f"round {number}: useful tokens/s, shared card / naive {useful['card'] / useful['naive']:.2f}x, "
              f"packed / naive {useful['packed'] / useful['naive']:.2f}x, shared card / packed {useful['card'] / useful['packed']:.2f}x")
    def median(a, b):
        return statistics.median(r[a]["useful_tok_s"] / r[b]["useful_tok_s"] for r in rounds)

    print(f"median over {args.rounds} round(s): shared card / naive {median('card', 'naive'):.2f}x (target >= 4x), "
          f"packed / naive {median('packed', 'naive'):.2f}x, shared card / packed {median('card', 'packed'):.2f}x")


if __name__ == "__main__":
    main()
