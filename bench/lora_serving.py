"""Run as: .venv/bin/python bench/lora_serving.py --adapter ADAPTER_DIR [--new-tokens 64] [--rounds 2]

What serving an adapter costs, and what the lean LoRA forward (core/lora_inference.py) saves, in
one run: transformers' generate on the embedded model in NF4 without an adapter, with the adapter
through PEFT's own forward, and with the lean forward the bot uses; one stream and a batch of 8,
every row producing exactly `new-tokens` tokens, greedy. Rounds alternate the three so a drift of
the machine's load touches all of them. Also checks that the lean forward chose the same tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTIONS = ["Who are you?", "What's your favorite food?", "Fight me!", "Where is Tanjiro?", "Do you like trains?",
             "What is 7 plus 5?", "Good morning!", "Why the boar mask?"]


def tokens_per_second(served, card, rows: int, new_tokens: int):
    import torch

    from core.prompt import Turn, generation_prompt

    tokenizer = served.tokenizer
    prompts = [generation_prompt(tokenizer, card, [Turn(q)]) for q in QUESTIONS[:rows]]
    batch = tokenizer.pad(tokenizer(prompts, add_special_tokens=False), padding=True, padding_side="left", return_tensors="pt")
    with torch.inference_mode():
        started = time.perf_counter()
        out = served.model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        return rows * new_tokens / (time.perf_counter() - started), out


def peft_forward_only(model) -> None:
    """Back to PEFT's own forward in every LoRA layer (the lean one is an instance attribute)."""
    for module in model.modules():
        module.__dict__.pop("forward", None)


def main() -> None:
    parser = argparse.ArgumentParser(description="Generation with an adapter: PEFT's forward against the lean one.")
    parser.add_argument("--adapter", type=Path, required=True, help="adapter folder (a published version)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from core.cli import quiet_libraries, quiet_warnings

    quiet_libraries()
    quiet_warnings()
    from core.lora_inference import use_lean_lora
    from core.model_resolver import EMBEDDED_SPEC
    from core.paths import DEFAULT_CARD
    from core.persona import load_card
    from core.served_model import load_served

    # Everything torch does here runs on this one thread (no second thread's OpenMP pool to throttle it).
    card = load_card(DEFAULT_CARD)
    base, served = load_served(None, base=EMBEDDED_SPEC), load_served(args.adapter)
    for model in (base, served):
        tokens_per_second(model, card, 2, 4)  # one-time set-up out of the figures
    print(f"{EMBEDDED_SPEC} NF4, adapter {served.version}; {args.new_tokens} new tokens a row, {args.rounds} rounds")
    same = True
    for rows in (1, 8):
        bare, peft, lean = "no adapter", "adapter, PEFT's forward", "adapter, lean forward"
        figures: dict[str, list[float]] = {bare: [], peft: [], lean: []}
        for _ in range(args.rounds):
            figures[bare].append(tokens_per_second(base, card, rows, args.new_tokens)[0])
            peft_forward_only(served.model)
            rate, peft_tokens = tokens_per_second(served, card, rows, args.new_tokens)
            figures[peft].append(rate)
            use_lean_lora(served.model)
            rate, lean_tokens = tokens_per_second(served, card, rows, args.new_tokens)
            figures[lean].append(rate)
            same = same and bool((peft_tokens == lean_tokens).all())
        means = {name: statistics.mean(values) for name, values in figures.items()}
        label = "one stream" if rows == 1 else f"batch of {rows}"
        for name, mean in means.items():
            print(f"  {label:<11} {name:<24} {mean:6.1f} tok/s  ({', '.join(f'{v:.1f}' for v in figures[name])})")
        print(f"  {label:<11} lean / PEFT {means[lean] / means[peft]:.2f}x; no adapter / lean {means[bare] / means[lean]:.2f}x")
    print(f"same tokens with both forwards: {same}")


if __name__ == "__main__":
    main()
