"""Run as: python -m bot --console [--say TEXT ...] [--adapter PATH | --no-adapter]
       python -m bot --ask "Who are you?"

--console runs the bot's reply pipeline and database in the terminal (no Discord token): per-
channel history in SQLite, context within a token budget, the batching model worker. --ask
answers one question and keeps nothing. The adapter is the latest in the registry
(state/adapters/) unless --adapter names one or --no-adapter asks for the bare base model.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bot.cli import run
from bot.model_resolver import EMBEDDED_SPEC


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--console", action="store_true", help="talk to the bot in the terminal (history kept in the database)")
    mode.add_argument("--ask", metavar="TEXT", help="answer one question in persona and exit")
    parser.add_argument("--say", action="append", default=None, metavar="TEXT", help="with --console: play these lines, then exit")
    parser.add_argument("--adapter", type=Path, default=None, help="adapter folder (default: the latest in state/adapters/)")
    parser.add_argument("--no-adapter", action="store_true", help="use the bare base model")
    parser.add_argument("--model", default=EMBEDDED_SPEC, help="base model without an adapter: smollm2-135m, a local HF folder or a hub id")
    parser.add_argument("--card", type=Path, default=None, help="persona card (JSON or PNG); default data/persona_card.json")
    parser.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    return parser.parse_args(argv)


def chosen_adapter(args) -> Path | None:
    from bot.adapters import versions

    if args.no_adapter:
        return None
    if args.adapter:
        return args.adapter
    published = versions()
    return published[-1] if published else None


def ask(args, adapter: Path | None) -> int:
    from bot.adapters import load_adapted_model, read_adapter
    from bot.generate import generate, reply_text
    from bot.model_resolver import load_model, load_tokenizer
    from bot.paths import DEFAULT_CARD
    from bot.persona import load_card
    from bot.prompt import Turn, generation_prompt

    card = load_card(args.card or DEFAULT_CARD)
    started = time.perf_counter()
    if adapter:
        info = read_adapter(adapter)
        tokenizer, model, prompt_format = load_tokenizer(info.base_model), load_adapted_model(info, args.quantization), info.prompt_format
    else:
        tokenizer, model, prompt_format = load_tokenizer(args.model), load_model(args.model, args.quantization), "chat"
    loaded = time.perf_counter()
    prompt = generation_prompt(tokenizer, card, [Turn(args.ask)], prompt_format)
    [answer] = generate(model, tokenizer, [prompt], args.max_new_tokens)
    print(f"You: {args.ask}\n{card.aliases[-1]}: {reply_text(answer.text, card)}")
    print(f"[{adapter or args.model}, {args.quantization}: loaded in {loaded - started:.1f}s, "
          f"{answer.new_tokens} tokens in {time.perf_counter() - loaded:.1f}s]")
    return 0


async def console(args, adapter: Path | None) -> int:
    from bot.console import converse
    from bot.paths import DEFAULT_CARD
    from bot.runtime import start_runtime

    runtime = await start_runtime(model=args.model, adapter=adapter, quantization=args.quantization,
                                  card_path=args.card or DEFAULT_CARD, max_new_tokens=args.max_new_tokens)
    try:
        return await converse(runtime, args.say)
    finally:
        await runtime.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    adapter = chosen_adapter(args)
    if args.ask is not None:
        return ask(args, adapter)
    return asyncio.run(console(args, adapter))


if __name__ == "__main__":
    raise SystemExit(run(main))
