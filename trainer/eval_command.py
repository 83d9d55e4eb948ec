"""`python -m trainer eval --adapter A [--against B | --against base]`: evaluate an adapter
against another (or the untuned base) on the fixed held-out set in evals/, and write a report
(report.md, metrics.json, charts) under state/evals/."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bot.paths import DEFAULT_CARD, PROJECT_ROOT, state_dir
from trainer.evaluation.evaluate import EvalSettings
from trainer.evaluation.gate import GateDecision, decide, gate_metrics

DEFAULT_EVAL_CONFIG = PROJECT_ROOT / "config" / "eval.yaml"


def add_arguments(parser) -> None:
    parser.add_argument("--adapter", required=True, help="adapter folder, registry version (v0003) or latest")
    parser.add_argument("--against", default="base", help="another adapter, or base: the untuned base model (default)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: state/evals/A-vs-B)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each part (a quick look)")
    parser.add_argument("--config", type=Path, default=DEFAULT_EVAL_CONFIG, help="evaluation settings and gate thresholds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card")


def load_eval_settings(path: Path = DEFAULT_EVAL_CONFIG, overrides: list[str] = ()) -> EvalSettings:
    from bot.config import build, values_with_overrides

    return build(EvalSettings, values_with_overrides(path, overrides, "max_new_tokens=64", required=False), str(path))


def evaluate_side(which: str, base_of: str | None, card, heldout, scorer, settings: EvalSettings) -> dict:
    """Load one side (an adapter, or `base`: the base model of `base_of`), evaluate, free it."""
    from bot.adapters import find_adapter, load_adapted_model, read_adapter
    from bot.model_resolver import load_model, load_tokenizer, release_device_memory
    from trainer.evaluation.evaluate import evaluate_model

    if which == "base":
        info = read_adapter(find_adapter(base_of))
        label, tokenizer = "base", load_tokenizer(info.base_model)
        model, prompt_format = load_model(info.base_model, info.quantization), "chat"  # what the bot serves with no adapter
    else:
        info = read_adapter(find_adapter(which))
        label, tokenizer = info.version, load_tokenizer(info.base_model)
        model, prompt_format = load_adapted_model(info), info.prompt_format
    try:
        return evaluate_model(label, model, tokenizer, card, prompt_format, heldout, scorer, settings)
    finally:
        del model
        release_device_memory()


@dataclass
class Comparison:
    a: dict
    b: dict
    decision: GateDecision
    report: Path
    seconds: float


def compare(adapter: str, against: str, *, card_path: Path = DEFAULT_CARD, settings: EvalSettings | None = None,
            limit: int | None = None, out: Path | None = None) -> Comparison:
    """Evaluate `adapter` and `against` on the same held-out set; the gate's verdict on
    `adapter` replacing `against`; the report written."""
    from bot.persona import load_card
    from trainer.evaluation.heldout import load_heldout
    from trainer.evaluation.report import write_report
    from trainer.evaluation.style import StyleScorer

    started = time.perf_counter()
    settings = settings or load_eval_settings()
    card = load_card(card_path)
    heldout = load_heldout(card).limited(limit)
    scorer = StyleScorer()
    a = evaluate_side(adapter, None, card, heldout, scorer, settings)
    b = evaluate_side(against, adapter, card, heldout, scorer, settings)
    decision = decide(gate_metrics(a), gate_metrics(b), settings.gate)
    out = out or state_dir() / "evals" / f"{a['label']}-vs-{b['label']}"
    report = write_report(a, b, out, decision)
    return Comparison(a, b, decision, report, time.perf_counter() - started)


def print_comparison(result: Comparison, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from trainer.evaluation.report import summary_rows

    console = console or Console()
    table = Table(title=f"{result.a['label']} vs {result.b['label']} (held-out set)")
    for column in ("metric", result.a["label"], result.b["label"], "better"):
        table.add_column(column)
    for row in summary_rows(result.a, result.b):
        table.add_row(*row)
    console.print(table)
    verdict = "PASSED" if result.decision.passed else "FAILED"
    console.print(f"gate ({result.a['label']} replacing {result.b['label']}): {verdict}: {'; '.join(result.decision.reasons)}",
                  highlight=False, markup=False)
    console.print(f"report: {result.report} ({result.seconds:.0f}s)", highlight=False)


def run_eval(args) -> Comparison:
    settings = load_eval_settings(args.config, args.overrides)
    result = compare(args.adapter, args.against, card_path=args.card, settings=settings, limit=args.limit, out=args.out)
    print_comparison(result)
    return result
