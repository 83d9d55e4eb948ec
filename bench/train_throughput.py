"""Run as: .venv/bin/python bench/train_throughput.py [--samples 48]

Training throughput of the smollm2-cpu recipe against a naive baseline, same model (SmolLM2 in
NF4 with the same LoRA) and the same training samples, each configuration in its own process so
that peak memory is its own:
- recipe: trainer/qlora.py as `python -m trainer train` runs it: best-fit packing, padding-free,
  loss only on the persona's replies;
- naive: plain transformers Trainer, every sample padded to max_seq_len, loss on every token.
"Useful" tokens are the persona-reply tokens (the ones worth learning), counted the same way for
both; each configuration processes the same samples once.
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


def run_one(kind: str, samples: int) -> dict:
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

    profile = load_profile("smollm2-cpu", ["eval_max_samples=2"])
    tokenizer = load_tokenizer(profile.model)
    rows = read_jsonl(ROOT / "state" / "dataset" / "train.jsonl")[:samples]
    useful = sum(sum(l != IGNORE for l in encode(tokenizer, r, "chat")["labels"]) for r in rows)
    model = load_model(profile.model, profile.quantization)
    if kind == "recipe":
        trainer = make_trainer(model, tokenizer, rows, rows[:2], profile, "/tmp/bench-recipe")
        steps = len(trainer.get_train_dataloader())  # one pass over the packed rows
    else:
        set_seed(0)
        keep_4bit_layers_differentiable(model)
        model = get_peft_model(model, lora_config(profile))
        encoded = tokenizer([tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows],
                            padding="max_length", max_length=profile.max_seq_len, add_special_tokens=False)
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--one", choices=["recipe", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.samples)))
        return
    if not (ROOT / "state" / "dataset" / "train.jsonl").is_file():
        subprocess.run([sys.executable, "-m", "trainer", "data", "build"], cwd=ROOT, check=True, capture_output=True)
    results = {}
    for kind in ("naive", "recipe"):
        done = subprocess.run([sys.executable, __file__, "--one", kind, "--samples", str(args.samples)],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            sys.exit(done.stderr)
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"smollm2-cpu recipe vs naive baseline, {args.samples} identical training samples, {results['recipe']['threads']} threads")
    print(f"{'':8} {'steps':>5} {'wall s':>7} {'padding':>8} {'non-pad tok/s':>14} {'useful tok/s':>13} {'peak RSS GiB':>13}")
    for kind in ("naive", "recipe"):
        r = results[kind]
        print(f"{kind:8} {r['steps']:>5} {r['wall_s']:>7.1f} {100 * r['padding_fraction']:>7.1f}% {r['non_padding_tok_s']:>14.0f} "
              f"{r['useful_tok_s']:>13.1f} {r['peak_rss_gib']:>13.2f}")
    ratio = results["recipe"]["useful_tok_s"] / results["naive"]["useful_tok_s"]
    print(f"useful tokens/s, recipe / naive: {ratio:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
