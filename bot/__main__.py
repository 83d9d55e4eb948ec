"""Run as: python -m bot --ask "Who are you?" [--adapter state/adapters/v0001] [--model smollm2-135m]

Answers one question in persona through the local model (4-bit NF4 by default), with a trained
adapter or the bare base model, using the same prompt builder and model resolution as the trainer.
"""

from __future__ import annotations

import argparse
import time

from bot.cli import run
from bot.model_resolver import EMBEDDED_SPEC


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument("--ask", required=True, metavar="TEXT", help="a question to answer in persona")
    parser.add_argument("--adapter", default=None, help="adapter folder from the trainer's registry (its manifest names the base model)")
    parser.add_argument("--model", default=EMBEDDED_SPEC, help="base model without an adapter: smollm2-135m, a local HF folder or a hub id")
    parser.add_argument("--card", default=None, help="persona card (JSON or PNG); default data/persona_card.json")
    parser.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bot.adapters import load_adapted_model, read_adapter
    from bot.generate import generate, reply_text
    from bot.model_resolver import load_model, load_tokenizer
    from bot.paths import DEFAULT_CARD
    from bot.persona import load_card
    from bot.prompt import Turn, generation_prompt

    args = parse_args(argv)
    card = load_card(args.card or DEFAULT_CARD)
    started = time.perf_counter()
    if args.adapter:
        info = read_adapter(args.adapter)
        tokenizer, model, prompt_format = load_tokenizer(info.base_model), load_adapted_model(info, args.quantization), info.prompt_format
    else:
        tokenizer, model, prompt_format = load_tokenizer(args.model), load_model(args.model, args.quantization), "chat"
    loaded = time.perf_counter()
    prompt = generation_prompt(tokenizer, card, [Turn(args.ask)], prompt_format)
    [answer] = generate(model, tokenizer, [prompt], args.max_new_tokens)
    print(f"You: {args.ask}\n{card.aliases[-1]}: {reply_text(answer.text, card)}")
    print(f"[{args.adapter or args.model}, {args.quantization}: loaded in {loaded - started:.1f}s, "
          f"{answer.new_tokens} tokens in {time.perf_counter() - loaded:.1f}s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
