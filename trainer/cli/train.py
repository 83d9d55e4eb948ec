"""python -m trainer train --profile NAME [--set key=value ...] [--resume [RUN]] [--show-masks]"""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_INTERRUPTED = 130
EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL, as `trainer retrain` and `schedule`: try again later


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train an adapter with a profile")
    parser.add_argument("--profile", default=None, help="profile name (trainer/profiles/NAME.yaml) or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile key, e.g. --set max_steps=20 --set lora.r=8 (repeatable)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN",
                        help="continue an interrupted run from its last checkpoint (default: the latest unfinished run)")
    parser.add_argument("--show-masks", action="store_true", help="print one rendered sample with its trained spans marked, then stop")
    parser.add_argument("--runs", type=Path, default=None, help="runs folder (default: state/runs)")
    parser.add_argument("--registry", type=Path, default=None, help="adapter registry (default: state/adapters)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import UserError
    from core.training_lock import TrainingRunning
    from trainer.distributed import finish
    from trainer.train import show_masks, train

    if args.show_masks:
        if not args.profile:
            raise UserError("--show-masks needs --profile")
        print(show_masks(args.profile, args.overrides))
        return 0
    try:
        outcome = train(args.profile, overrides=args.overrides, resume=args.resume, runs=args.runs, registry=args.registry)
    except TrainingRunning as exc:
        print(exc)
        return EXIT_ALREADY_RUNNING
    finally:
        finish()  # this process's training is over: leave the process group before the interpreter exits
    return EXIT_INTERRUPTED if outcome.interrupted else 0
