"""Run as: python -m trainer <command>

  data build   build the dataset from data/: validate, de-duplicate, split, statistics, chart
  train        QLoRA-train an adapter with a profile (--profile smollm2-cpu), --resume after Ctrl-C
  eval         evaluate an adapter against another or the base: --adapter A [--against B|base]
  chat         talk to an adapter: --say TEXT (repeatable) or an interactive REPL
  retrain      curated data + approved chat logs -> candidate -> evaluation gate -> promote (--dry-run)
  schedule     retrain when enough new approved samples exist (once, for cron; or --every SECONDS)
  rollback     serve the previous adapter again (--to vNNNN for another)
  export       an adapter as a merged model, GGUF (+ Q4_K_M), llama.cpp LoRA, Ollama Modelfile, card PNG
  plan         estimate a profile's peak memory term by term and check it against its budget
  demo         the whole job on the embedded model: dataset, training, evaluation, a conversation
"""

from __future__ import annotations

import argparse

from core.cli import run
from trainer.cli import chat, data, demo, evaluate, export, feedback, plan, train


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Inosuke's offline trainer.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (data, train, evaluate, chat, feedback, export, plan, demo):
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args)


def entry() -> None:
    """Console script `inosuke-trainer`."""
    raise SystemExit(run(main))


if __name__ == "__main__":
    entry()
