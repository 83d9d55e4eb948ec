"""Evaluate an adapter against another (or the untuned base) on the fixed held-out set in
evals/, and write a report (report.md, metrics.json, charts) under state/evals/: the library call
under `python -m trainer eval` (trainer/cli/evaluate.py), the retraining gate and the demo."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.paths import DEFAULT_CARD, PROJECT_ROOT, state_dir
from trainer.evaluation.evaluate import EvalSettings
from trainer.evaluation.gate import GateDecision, decide, gate_metrics

DEFAULT_EVAL_CONFIG = PROJECT_ROOT / "config" / "eval.yaml"


def load_eval_settings(path: Path = DEFAULT_EVAL_CONFIG, overrides: list[str] = ()) -> EvalSettings:
    from core.config import build, values_with_overrides

    return build(EvalSettings, values_with_overrides(path, overrides, "max_new_tokens=64", required=False), str(path))


def evaluate_side(which: str, base_of: str | None, card, heldout, scorer, settings: EvalSettings, serving=None) -> dict:
    """Load one side (an adapter, or `base`: the bare base model of adapter `base_of`, as the
    bot serves it with no adapter), evaluate, free it."""
    from core.model_resolver import release_device_memory
    from core.registry import find_adapter, read_adapter
    from core.served_model import load_served
    from trainer.evaluation.evaluate import evaluate_model

    if which == "base":
        info = read_adapter(find_adapter(base_of))
        served, label = load_served(None, base=info.base_model, quantization=info.quantization), "base"
    else:
        served = load_served(find_adapter(which))
        label = served.version
    try:
        return evaluate_model(label, served.model, served.tokenizer, card, served.prompt_format, heldout, scorer, settings, serving)
    finally:
        del served
        release_device_memory()


@dataclass
class Comparison:
    a: dict
    b: dict
    decision: GateDecision
    report: Path
    seconds: float


def card_of(adapter_path: Path) -> Path:
    """The persona card the adapter was trained with (its manifest's profile), else the project's."""
    import json

    from core.paths import project_path

    manifest = json.loads((adapter_path / "manifest.json").read_text(encoding="utf-8"))  # read_adapter checked it
    profile = manifest.get("profile") or {}
    card = profile.get("card") if isinstance(profile, dict) else None
    if card is not None and not isinstance(card, str):
        raise UserError(f"{adapter_path / 'manifest.json'}: profile.card: expected a path, got {card!r}")
    return project_path(card) if card else DEFAULT_CARD


def heldout_for(adapter_path: Path, card, heldout: Path | None):
    """The held-out set for this adapter's character: `heldout` when given; evals/ when it was
    written for this character; else the adapter's own eval split (never trained on)."""
    from core.registry import EVAL_SPLIT
    from trainer.evaluation.heldout import EVALS_DIR, folder_character, heldout_from_split, load_heldout

    if heldout is not None:
        return load_heldout(card, heldout)
    if folder_character(EVALS_DIR) == card.name:
        return load_heldout(card, EVALS_DIR)
    split = adapter_path / EVAL_SPLIT
    if not split.is_file():
        raise UserError(f"no held-out set for {card.name}: evals/ is {folder_character(EVALS_DIR)}'s and {adapter_path} "
                        f"has no {EVAL_SPLIT}; pass --heldout DIR (see evals/README.md for its files)")
    return heldout_from_split(split, card)


def compare(adapter: str, against: str, *, card_path: Path | None = None, heldout: Path | None = None,
            settings: EvalSettings | None = None, limit: int | None = None, out: Path | None = None,
            serving=None) -> Comparison:
    """Evaluate `adapter` and `against` (another adapter, or "base") on the same held-out set (see
    heldout_for) with the character's card (default: the one `adapter` was trained with); the
    gate's verdict on `adapter` replacing `against`; the report written. `serving`: the bot's
    decoding as its backend applies it (default: config/bot.yaml's, BotSettings.served_decoding)."""
    from core.persona import load_card
    from core.registry import find_adapter, read_adapter
    from trainer.evaluation.report import write_report
    from trainer.evaluation.style import StyleScorer

    started = time.perf_counter()
    settings = settings or load_eval_settings()
    # Both adapters checked (a folder, its manifest) before anything is read from them or loaded.
    adapter_path = read_adapter(find_adapter(adapter)).path
    if against != "base":
        read_adapter(find_adapter(against))
    card = load_card(card_path or card_of(adapter_path))
    held = heldout_for(adapter_path, card, heldout).limited(limit)
    scorer = StyleScorer()
    a = evaluate_side(adapter, None, card, held, scorer, settings, serving)
    b = evaluate_side(against, adapter, card, held, scorer, settings, serving)
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
