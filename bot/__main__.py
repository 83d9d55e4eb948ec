"""Run as: python -m bot --ask "Who are you?" [--model smollm2-135m] [--card data/persona_card.json]

Answers one question in persona through the local model (4-bit NF4 by default), using the same
prompt builder and model resolution as the trainer.
"""

from __future__ import annotations

import argparse
import time

from bot.cli import run
from bot.model_resolver import EMBEDDED_SPEC


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument("--ask", required=True, metavar="TEXT", help="a question to answer in persona")
    parser.add_argument("--model", default=EMBEDDED_SPEC, help="smollm2-135m, a local HF folder or a hub id")
    parser.add_argument("--card", default=None, help="persona card (JSON or PNG); default data/persona_card.json")
    parser.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bot.generate import generate_replies
    from bot.model_resolver import load_model, load_tokenizer
    from bot.paths import DEFAULT_CARD
    from bot.persona import load_card
    from bot.prompt import Turn, chat_messages

    args = parse_args(argv)
    card = load_card(args.card or DEFAULT_CARD)
    started = time.perf_counter()
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, args.quantization)
    loaded = time.perf_counter()
    [reply] = generate_replies(model, tokenizer, [chat_messages(card, [Turn(args.ask)])], args.max_new_tokens)
    print(f"You: {args.ask}\n{card.name}: {reply}")
    print(f"[{args.model}, {args.quantization}: loaded in {loaded - started:.1f}s, answered in {time.perf_counter() - loaded:.1f}s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
