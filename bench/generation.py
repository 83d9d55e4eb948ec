"""Run as: .venv/bin/python bench/generation.py [--model smollm2-135m] [--new-tokens 64]

Generation speed of the model as the bot loads it: 4-bit NF4 against full precision, one stream
against a batch of 8 conversations, all in one run so the ratios are comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
import time


from core.cli import quiet_libraries
from core.model_resolver import EMBEDDED_SPEC, load_model, load_tokenizer
from core.paths import DEFAULT_CARD
from core.persona import load_card
from core.prompt import Turn, chat_messages, render_chat

QUESTIONS = ["Who are you?", "What's your favorite food?", "Why the boar mask?", "Fight me!",
             "What is 7 plus 5?", "Do you like trains?", "Where is Tanjiro?", "Good morning!"]


def tokens_per_second(model, tokenizer, conversations, new_tokens: int) -> float:
    import torch

    texts = [render_chat(tokenizer, c, add_generation_prompt=True) for c in conversations]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        started = time.perf_counter()
        # min_new_tokens = max_new_tokens: every row produces exactly new_tokens tokens.
        model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id)
        elapsed = time.perf_counter() - started
    return len(conversations) * new_tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=EMBEDDED_SPEC)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    quiet_libraries()
    import torch

    print(f"model {args.model}, {args.new_tokens} new tokens a reply, torch threads {torch.get_num_threads()}")
    card = load_card(DEFAULT_CARD)
    tokenizer = load_tokenizer(args.model)
    conversations = [chat_messages(card, [Turn(q)]) for q in QUESTIONS]
    print(f"{'precision':<10} {'MiB':>6} {'1 stream tok/s':>15} {'batch 8 tok/s':>14} {'batch gain':>11}")
    for quantization in ("nf4", "none"):
        model = load_model(args.model, quantization)
        tokens_per_second(model, tokenizer, conversations[:1], 8)  # warm-up
        single = tokens_per_second(model, tokenizer, conversations[:1], args.new_tokens)
        batched = tokens_per_second(model, tokenizer, conversations, args.new_tokens)
        print(f"{quantization:<10} {model.get_memory_footprint() / 2**20:>6.0f} {single:>15.1f} {batched:>14.1f} {batched / single:>10.1f}x")
        del model


if __name__ == "__main__":
    main()
