"""`python -m trainer data build`: the data pipeline from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bot.model_resolver import EMBEDDED_SPEC
from bot.paths import DATA_DIR, DEFAULT_CARD, state_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    build = sub.add_parser("build", help="ingest, validate, de-duplicate, split; print statistics; draw the chart")
    build.add_argument("--data", type=Path, default=DATA_DIR, help="folder of sample files (default: data/)")
    build.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card, JSON or PNG (default: data/persona_card.json)")
    build.add_argument("--out", type=Path, default=None, help="output folder (default: state/dataset)")
    build.add_argument("--model", default=EMBEDDED_SPEC, help="model whose tokenizer measures sample length")
    build.add_argument("--max-tokens", type=int, default=None, help="longest sample allowed (default: the model's context)")
    build.add_argument("--eval-fraction", type=float, default=0.05, help="share of each source held out for eval")
    build.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    build.add_argument("--rejects", type=Path, default=None, help="write bad rows here and go on, instead of failing")


def token_counter(tokenizer):
    from bot.prompt import render_chat

    def count(messages: list[dict[str, str]]) -> int:
        return len(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])

    return count


def run_build(args: argparse.Namespace, console: Console | None = None):
    from bot.errors import UserError
    from bot.model_resolver import context_length, load_tokenizer
    from bot.persona import load_card
    from trainer.dataset.pipeline import build_dataset
    from trainer.dataset.stats import print_table

    console = console or Console()
    if not 0 <= args.eval_fraction < 1:
        raise UserError(f"--eval-fraction: must be at least 0 and below 1, got {args.eval_fraction}")
    persona = load_card(args.card)
    tokenizer = load_tokenizer(args.model)
    max_tokens = args.max_tokens or context_length(args.model)
    out = args.out or state_dir() / "dataset"
    result = build_dataset(
        args.data, persona, out,
        max_tokens=max_tokens, count_tokens=token_counter(tokenizer),
        eval_fraction=args.eval_fraction, seed=args.seed, rejects=args.rejects,
    )
    print_table(result.composition, console, title=f"{persona.name} dataset")
    console.print(f"train {len(result.train):,} / eval {len(result.eval):,} (eval fraction {args.eval_fraction}, seed {args.seed}); "
                  f"max {max_tokens:,} tokens a sample ({args.model} tokenizer)")
    console.print(f"duplicates removed: {len(result.duplicates)} "
                  f"({sum(d.exact for d in result.duplicates)} exact, {sum(not d.exact for d in result.duplicates)} after normalizing)")
    for duplicate in result.duplicates[:5]:
        console.print(f"  {duplicate}", markup=False)
    if result.problems:
        console.print(f"[yellow]{result.rejected_rows} row(s) rejected ({len(result.problems)} problem(s)), written to {args.rejects}[/]")
        for problem in result.problems[:10]:
            console.print(f"  {problem}", markup=False)
    else:
        console.print("validation errors: 0")
    console.print(f"wrote {out}/train.jsonl, eval.jsonl, dataset.json, composition.png")
    return result
