"""python -m trainer plan --profile NAME [--set key=value] [--device gpu|cpu]"""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    parser = commands.add_parser("plan", help="estimate a profile's peak training memory")
    parser.add_argument("--profile", required=True, help="profile name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", choices=["gpu", "cpu"], default=None,
                        help="gpu or cpu (default: gpu unless the model is the embedded CPU one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.model_resolver import EMBEDDED_SPEC
    from trainer.plan import print_plan
    from trainer.profile import load_profile

    profile = load_profile(args.profile, args.overrides)
    device = args.device or ("cpu" if profile.model == EMBEDDED_SPEC else "gpu")
    return 0 if print_plan(profile, device).fits else 1
