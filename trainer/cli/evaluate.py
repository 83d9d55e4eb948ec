"""python -m trainer eval --adapter A [--against B | --against base] [--heldout DIR] [--limit N] [--set key=value]"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.evaluation.compare import DEFAULT_EVAL_CONFIG


def add_parser(commands) -> None:
    parser = commands.add_parser("eval", help="evaluate an adapter on the held-out set")
    parser.add_argument("--adapter", required=True, help="adapter folder, registry version (v0003) or latest")
    parser.add_argument("--against", default="base", help="another adapter, or base: the untuned base model (default)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: state/evals/A-vs-B)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each part (a quick look)")
    parser.add_argument("--config", type=Path, default=DEFAULT_EVAL_CONFIG, help="evaluation settings and gate thresholds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--card", type=Path, default=None, help="persona card (default: the one the adapter was trained with)")
    parser.add_argument("--heldout", type=Path, default=None,
                        help="held-out folder (default: evals/ for its own character, else the adapter's eval split)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.evaluation.compare import compare, load_eval_settings, print_comparison

    settings = load_eval_settings(args.config, args.overrides)
    print_comparison(compare(args.adapter, args.against, card_path=args.card, heldout=args.heldout, settings=settings,
                             limit=args.limit, out=args.out))
    return 0
