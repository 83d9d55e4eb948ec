"""python -m trainer demo (make demo): the main job on the embedded default model."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    commands.add_parser("demo", help="run the main job on the embedded default model").set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.demo import run_demo

    run_demo()
    return 0
