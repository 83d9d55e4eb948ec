"""The feedback loop's commands:

  retrain   [--dry-run]               curated data + approved logs -> candidate -> gate -> promote
  schedule  [--every SECONDS]         retrain when enough new approved samples exist (cron-friendly)
  rollback  [--to vNNNN]              serve the previous adapter again
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.settings import DEFAULT_CONFIG as DEFAULT_BOT_CONFIG

EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: cron may simply try again later


def add_parser(commands) -> None:
    retrain = commands.add_parser("retrain", help="retrain from approved chat logs, gated")
    add_retrain_arguments(retrain)
    retrain.set_defaults(func=run_retrain)
    schedule = commands.add_parser("schedule", help="retrain when enough new samples exist")
    add_retrain_arguments(schedule)
    schedule.add_argument("--every", type=float, default=None, metavar="SECONDS",
                          help="keep running and check this often (default: check once and exit, for cron)")
    schedule.set_defaults(func=run_schedule)
    rollback = commands.add_parser("rollback", help="serve the previous adapter again")
    rollback.add_argument("--to", default=None, metavar="VERSION", help="a published version (default: the previous one)")
    rollback.add_argument("--bot-config", type=Path, default=DEFAULT_BOT_CONFIG,
                          help="the serving bot's config: with backend: llama-server the version's LoRA GGUF is exported first")
    rollback.set_defaults(func=run_rollback)


def add_retrain_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="show the data a retrain would use, train nothing")
    parser.add_argument("--config", type=Path, default=None, help="retrain settings (default: config/retrain.yaml)")
    parser.add_argument("--eval-config", type=Path, default=None, help="evaluation and gate (default: config/eval.yaml)")
    parser.add_argument("--bot-config", type=Path, default=DEFAULT_BOT_CONFIG,
                        help="the config of the bot whose logs are used: samples get its context window (default: config/bot.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a retrain setting (e.g. profile_overrides=[max_steps=40])")
    parser.add_argument("--eval-set", dest="eval_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an evaluation setting (e.g. gate.max_qa_drop=0.1)")


def settings_of(args: argparse.Namespace):
    from trainer.evaluation.compare import DEFAULT_EVAL_CONFIG, load_eval_settings
    from trainer.retrain import DEFAULT_RETRAIN_CONFIG, load_retrain_settings

    return (load_retrain_settings(args.config or DEFAULT_RETRAIN_CONFIG, args.overrides),
            load_eval_settings(args.eval_config or DEFAULT_EVAL_CONFIG, args.eval_overrides))


def run_retrain(args: argparse.Namespace) -> int:
    from core.training_lock import TrainingRunning
    from trainer.retrain import retrain

    settings, eval_settings = settings_of(args)
    try:
        outcome = retrain(settings, eval_settings, dry_run=args.dry_run, bot_config=args.bot_config)
    except TrainingRunning as exc:
        print(exc)
        return EXIT_ALREADY_RUNNING
    if outcome.status == "dry-run":
        print("dry run: nothing trained")
        return 0
    print(f"retrain {outcome.status}: candidate {outcome.candidate.name if outcome.candidate else 'none'}, "
          f"in service before: {outcome.previous or 'base model'}; {outcome.reason} ({outcome.seconds:.0f}s; run #{outcome.run_id})")
    return 0 if outcome.status in ("promoted", "rejected") else 1


def run_schedule(args: argparse.Namespace) -> int:
    from trainer.retrain import schedule

    settings, eval_settings = settings_of(args)
    finished = schedule(settings, eval_settings, every=args.every, dry_run=args.dry_run, bot_config=args.bot_config)
    return 0 if finished else EXIT_ALREADY_RUNNING


def run_rollback(args: argparse.Namespace) -> int:
    from core.serving_pointer import rollback
    from trainer.export.serving import prepare_for_serving

    # With backend: llama-server the version's LoRA GGUF is exported first.
    before, after = rollback(to=args.to, prepare=lambda target: prepare_for_serving(target, args.bot_config))
    print(f"in service: {after} (was {before or 'none'}); a running bot switches within its poll interval")
    return 0
