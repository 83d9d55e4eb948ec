"""python -m trainer data build [--data DIR] [--card CARD] [--out DIR] [--rejects FILE] ..."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.model_resolver import EMBEDDED_SPEC
from core.paths import DATA_DIR, DEFAULT_CARD
from trainer.dataset.build import DEFAULT_QUALITY_CONFIG


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="the data pipeline")
    sub = data.add_subparsers(dest="data_command", required=True)
    build = sub.add_parser("build", help="ingest, validate, de-duplicate, split; print statistics; draw the chart")
    build.add_argument("--data", type=Path, default=DATA_DIR, help="folder of sample files (default: data/)")
    build.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card, JSON or PNG (default: data/persona_card.json)")
    build.add_argument("--out", type=Path, default=None, help="output folder (default: state/dataset)")
    build.add_argument("--model", default=EMBEDDED_SPEC, help="model whose tokenizer measures sample length")
    build.add_argument("--max-tokens", type=int, default=None, help="longest sample allowed (default: the model's context)")
    build.add_argument("--eval-fraction", type=float, default=0.05, help="share of each source held out for eval")
    build.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    build.add_argument("--rejects", type=Path, default=None, help="write bad rows here and go on, instead of failing")
    build.add_argument("--quality-config", type=Path, default=DEFAULT_QUALITY_CONFIG,
                       help="thresholds of the data-quality report (default: config/data_quality.yaml)")
    build.add_argument("--quality-set", dest="quality_overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a quality threshold, e.g. --quality-set max_reply_uses=5")
    build.add_argument("--skip-quality", action="store_true", help="build without the data-quality report")
    build.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.dataset.build import build, load_quality_settings

    quality = None if args.skip_quality else load_quality_settings(args.quality_config, args.quality_overrides)
    build(args.data, args.card, args.out, model=args.model, max_tokens=args.max_tokens, eval_fraction=args.eval_fraction,
          seed=args.seed, rejects=args.rejects, quality=quality)
    return 0
