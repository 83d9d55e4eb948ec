"""The feedback loop's commands:

  retrain   [--dry-run]               curated data + approved logs -> candidate -> gate -> promote
  schedule  [--every SECONDS]         retrain when enough new approved samples exist (cron-friendly)
  rollback  [--to vNNNN]              serve the previous adapter again
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: cron may simply try again later


def add_retrain_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="show the data a retrain would use, train nothing")
    parser.add_argument("--config", type=Path, default=None, help="retrain settings (default: config/retrain.yaml)")
    parser.add_argument("--eval-config", type=Path, default=None, help="evaluation and gate (default: config/eval.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a retrain setting (e.g. profile_overrides=[max_steps=40])")
    parser.add_argument("--eval-set", dest="eval_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an evaluation setting (e.g. gate.max_qa_drop=0.1)")


def add_schedule_arguments(parser) -> None:
    add_retrain_arguments(parser)
    parser.add_argument("--every", type=float, default=None, metavar="SECONDS",
                        help="keep running and check this often (default: check once and exit, for cron)")


def settings_of(args):
    from trainer.eval_command import DEFAULT_EVAL_CONFIG, load_eval_settings
    from trainer.retrain import DEFAULT_RETRAIN_CONFIG, load_retrain_settings

    return (load_retrain_settings(args.config or DEFAULT_RETRAIN_CONFIG, args.overrides),
            load_eval_settings(args.eval_config or DEFAULT_EVAL_CONFIG, args.eval_overrides))


def run_retrain_command(args) -> int:
    from bot.training_lock import TrainingRunning
    from trainer.retrain import run_retrain

    settings, eval_settings = settings_of(args)
    try:
        outcome = run_retrain(settings, eval_settings, dry_run=args.dry_run)
    except TrainingRunning as exc:
        print(exc)
        return EXIT_ALREADY_RUNNING
    if outcome.status == "dry-run":
        print("dry run: nothing trained")
        return 0
    print(f"retrain {outcome.status}: candidate {outcome.candidate.name if outcome.candidate else 'none'}, "
          f"in service before: {outcome.previous or 'base model'}; {outcome.reason} ({outcome.seconds:.0f}s; run #{outcome.run_id})")
    return 0 if outcome.status in ("promoted", "rejected") else 1


def new_samples(settings) -> tuple[int, int | None]:
    """(qualifying replies newer than the last completed run, that run's id)."""
    from bot.db.database import upgrade
    from bot.model_resolver import load_tokenizer
    from bot.paths import project_path
    from bot.persona import load_card
    from trainer.profile import load_profile
    from trainer.retrain import export_logs, log_rules, with_sessions
    from trainer.run_records import last_completed_run

    profile = load_profile(settings.profile, settings.profile_overrides)
    upgrade()
    last = asyncio.run(with_sessions(None, last_completed_run))
    since = last.last_reply_id if last is not None else None
    export = asyncio.run(export_logs(None, load_card(project_path(profile.card)), load_tokenizer(profile.model),
                                     log_rules(settings), profile.prompt_format, since_reply_id=since))
    return len(export.samples), (last.id if last is not None else None)


def run_schedule_command(args) -> int:
    from bot.training_lock import TrainingRunning, training_in_progress
    from trainer.retrain import run_retrain

    settings, eval_settings = settings_of(args)
    while True:
        count, last = new_samples(settings)
        since = f"since run #{last}" if last else "so far"
        if training_in_progress():
            print(f"{count} new approved sample(s) {since}; a training is running, checking again later")
        elif count < settings.min_new_samples:
            print(f"{count} new approved sample(s) {since}; retraining at {settings.min_new_samples}: nothing to do")
        elif args.dry_run:
            print(f"{count} new approved sample(s) {since}: a retrain would start now")
        else:
            print(f"{count} new approved sample(s) {since}: retraining")
            try:
                outcome = run_retrain(settings, eval_settings)
                print(f"retrain {outcome.status}: {outcome.reason}")
            except TrainingRunning as exc:
                print(exc)
                if args.every is None:
                    return EXIT_ALREADY_RUNNING
        if args.every is None:
            return 0
        time.sleep(args.every)


def add_rollback_arguments(parser) -> None:
    parser.add_argument("--to", default=None, metavar="VERSION", help="a published version (default: the previous one)")


def run_rollback_command(args) -> int:
    from bot.serving import rollback

    before, after = rollback(to=args.to)
    print(f"in service: {after} (was {before or 'none'}); a running bot switches within its poll interval")
    return 0


