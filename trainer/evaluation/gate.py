"""The retraining gate: the metrics it reads from an evaluation, and its decision. Thresholds
come from config/eval.yaml (`gate:`), through the one config loader."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GATE_METRICS = ("eval_loss", "style_score", "failure_rate", "qa_accuracy", "multi_turn_score")


@dataclass(frozen=True)
class GateSettings:
    min_style_gain: float = 0.0  # candidate style score minus current must be at least this
    max_failure_rate_increase: float = 0.0  # candidate failure rate may exceed current by at most this
    max_qa_drop: float = 0.05  # generic QA accuracy may fall by at most this (0.05 = one question in 20)
    max_eval_loss_increase: float = 0.05  # held-out loss may rise by at most this
    max_multi_turn_drop: float = 0.1  # multi-turn score may fall by at most this


def gate_metrics(result: dict) -> dict[str, float]:
    """The numbers the gate compares, from one model's evaluation (see evaluate.evaluate_model)."""
    return {name: float(result[name]) for name in GATE_METRICS}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed, or what it won on
    deltas: dict[str, float] = field(default_factory=dict)  # candidate minus current


def decide(candidate: dict[str, float], current: dict[str, float], settings: GateSettings) -> GateDecision:
    """Promote only a candidate that is no worse anywhere (within the thresholds) and strictly
    better on at least one of style, failures or loss."""
    d = {name: candidate[name] - current[name] for name in GATE_METRICS}
    # A comparison with NaN is always False, so a NaN metric (a diverged run) would pass every check.
    problems = [f"{name} {candidate[name]} is not a finite number" for name in GATE_METRICS if not math.isfinite(candidate[name])]
    if d["style_score"] < settings.min_style_gain:
        problems.append(f"style score {candidate['style_score']:.3f} vs {current['style_score']:.3f} "
                        f"(needs a gain of at least {settings.min_style_gain:+.3f})")
    if d["failure_rate"] > settings.max_failure_rate_increase:
        problems.append(f"failure rate {candidate['failure_rate']:.1%} vs {current['failure_rate']:.1%}")
    if -d["qa_accuracy"] > settings.max_qa_drop:
        problems.append(f"generic QA {candidate['qa_accuracy']:.1%} vs {current['qa_accuracy']:.1%} "
                        f"(may drop by {settings.max_qa_drop:.1%} at most)")
    if d["eval_loss"] > settings.max_eval_loss_increase:
        problems.append(f"held-out loss {candidate['eval_loss']:.3f} vs {current['eval_loss']:.3f}")
    if -d["multi_turn_score"] > settings.max_multi_turn_drop:
        problems.append(f"multi-turn score {candidate['multi_turn_score']:.2f} vs {current['multi_turn_score']:.2f}")
    if problems:
        return GateDecision(False, problems, d)
    wins = [w for w, better in (("style score", d["style_score"] > 0), ("failure rate", d["failure_rate"] < 0),
                                ("held-out loss", d["eval_loss"] < 0)) if better]
    if not wins:
        return GateDecision(False, ["no better than the current adapter on style, failures or loss"], d)
    return GateDecision(True, [f"better on {', '.join(wins)}"], d)
