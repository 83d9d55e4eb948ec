"""Run as: python -m trainer <command>

  data build   build the dataset from data/: validate, de-duplicate, split, statistics, chart
  demo         the whole job on the embedded model: dataset, then Inosuke answering in persona
"""

from __future__ import annotations

import argparse

from bot.cli import run
from trainer import data_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Inosuke's offline trainer.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data_command.add_arguments(commands.add_parser("data", help="the data pipeline"))
    commands.add_parser("demo", help="run the main job on the embedded default model")
    args = parser.parse_args(argv)
    if args.command == "data":
        data_command.run_build(args)
    elif args.command == "demo":
        from trainer.demo import run_demo

        run_demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
