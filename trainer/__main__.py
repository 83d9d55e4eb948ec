"""Run as: python -m trainer <command>

  data build   build the dataset from data/: validate, de-duplicate, split, statistics, chart
  train        QLoRA-train an adapter with a profile (--profile smollm2-cpu), --resume after Ctrl-C
  eval         evaluate an adapter against another or the base: --adapter A [--against B|base]
  chat         talk to an adapter: --say TEXT (repeatable) or an interactive REPL
  retrain      curated data + approved chat logs -> candidate -> evaluation gate -> promote (--dry-run)
  schedule     retrain when enough new approved samples exist (once, for cron; or --every SECONDS)
  rollback     serve the previous adapter again (--to vNNNN for another)
  plan         estimate a profile's peak memory term by term and check it against its budget
  demo         the whole job on the embedded model: dataset, then Inosuke answering in persona
"""

from __future__ import annotations

import argparse

from bot.cli import run
from trainer import chat_command, data_command, eval_command, loop_commands, train_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Inosuke's offline trainer.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data_command.add_arguments(commands.add_parser("data", help="the data pipeline"))
    train_command.add_arguments(commands.add_parser("train", help="train an adapter with a profile"))
    eval_command.add_arguments(commands.add_parser("eval", help="evaluate an adapter on the held-out set"))
    chat_command.add_arguments(commands.add_parser("chat", help="talk to an adapter"))
    loop_commands.add_retrain_arguments(commands.add_parser("retrain", help="retrain from approved chat logs, gated"))
    loop_commands.add_schedule_arguments(commands.add_parser("schedule", help="retrain when enough new samples exist"))
    loop_commands.add_rollback_arguments(commands.add_parser("rollback", help="serve the previous adapter again"))
    plan = commands.add_parser("plan", help="estimate a profile's peak training memory")
    plan.add_argument("--profile", required=True, help="profile name or YAML path")
    plan.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    plan.add_argument("--device", default=None, help="gpu or cpu (default: gpu unless the model is the embedded CPU one)")
    commands.add_parser("demo", help="run the main job on the embedded default model")
    args = parser.parse_args(argv)
    if args.command == "data":
        data_command.run_build(args)
    elif args.command == "train":
        return 130 if train_command.run_train(args).interrupted else 0
    elif args.command == "eval":
        eval_command.run_eval(args)
    elif args.command == "retrain":
        return loop_commands.run_retrain_command(args)
    elif args.command == "schedule":
        return loop_commands.run_schedule_command(args)
    elif args.command == "rollback":
        return loop_commands.run_rollback_command(args)
    elif args.command == "chat":
        return chat_command.run_chat(args)
    elif args.command == "plan":
        from bot.model_resolver import EMBEDDED_SPEC
        from trainer.plan import print_plan
        from trainer.profile import load_profile

        profile = load_profile(args.profile, args.overrides)
        device = args.device or ("cpu" if profile.model == EMBEDDED_SPEC else "gpu")
        return 0 if print_plan(profile, device).fits else 1
    elif args.command == "demo":
        from trainer.demo import run_demo

        run_demo()
    return 0


def entry() -> None:
    """Console script `inosuke-trainer`."""
    raise SystemExit(run(main))


if __name__ == "__main__":
    entry()
