"""The evaluation report: report.md with the tables, metrics.json with everything, and charts
(metrics.png: the headline numbers side by side; failures.png: each failure kind; style.png:
style margin per held-out prompt)."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.evaluation.failures import FAILURE_KINDS
from trainer.evaluation.gate import GateDecision

HEADLINE = [  # (key, title, format, higher is better)
    ("eval_loss", "held-out loss", "{:.3f}", False),
    ("perplexity", "perplexity", "{:.1f}", False),
    ("style_score", "style score (reference similarity - assistant likeness)", "{:.3f}", True),
    ("reference_similarity", "similarity to the reference reply", "{:.3f}", True),
    ("assistant_likeness", "similarity to generic assistant lines", "{:.3f}", False),
    ("failure_rate", "replies with any failure", "{:.1%}", False),
    ("qa_accuracy", "generic QA correct", "{:.1%}", True),
    ("multi_turn_score", "multi-turn turns passed", "{:.1%}", True),
]


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " / ") or "(empty)"


def summary_rows(a: dict, b: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for key, title, fmt, higher in HEADLINE:
        diff = a[key] - b[key]
        better = (diff > 0) == higher if abs(diff) > 1e-9 else None
        mark = {True: f"{a['label']}", False: f"{b['label']}", None: "tie"}[better]
        rows.append((title, fmt.format(a[key]), fmt.format(b[key]), mark))
    return rows


def write_charts(a: dict, b: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [a["label"], b["label"]]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    for ax, (key, title) in zip(axes, [("style_score", "style score"), ("failure_rate", "failure rate"),
                                       ("qa_accuracy", "generic QA"), ("multi_turn_score", "multi-turn")]):
        ax.bar(labels, [a[key], b[key]], color=["#c0392b", "#7f8c8d"])
        ax.set_title(title)
        for x, v in enumerate([a[key], b[key]]):
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom")
    fig.suptitle(f"{a['label']} vs {b['label']} on the held-out set")
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.4))
    xs = range(len(FAILURE_KINDS))
    ax.bar([x - 0.2 for x in xs], [a["failures"][k] for k in FAILURE_KINDS], 0.4, label=a["label"], color="#c0392b")
    ax.bar([x + 0.2 for x in xs], [b["failures"][k] for k in FAILURE_KINDS], 0.4, label=b["label"], color="#7f8c8d")
    ax.set_xticks(list(xs), [k.replace("_", " ") for k in FAILURE_KINDS])
    ax.set_ylabel("share of replies")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "failures.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.4))
    n = len(a["persona"])
    ax.plot(range(1, n + 1), [r["style"] for r in a["persona"]], "o-", label=a["label"], color="#c0392b")
    ax.plot(range(1, n + 1), [r["style"] for r in b["persona"]], "s--", label=b["label"], color="#7f8c8d")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("held-out prompt")
    ax.set_ylabel("style margin")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "style.png", dpi=100)
    plt.close(fig)
    return ["metrics.png", "failures.png", "style.png"]


def decoding_rows(a: dict, b: dict) -> list[str]:
    """Each decoding evaluated (serving: what users get, sampled with fixed seeds; greedy), side by side."""
    if len(a.get("by_decoding", {})) < 2:
        return []
    lines = ["", "### By decoding", "", f"Serving: {describe(a['by_decoding']['serving']['decoding'])}; greedy: the likeliest "
             "token every time. The gate reads the first.", "",
             f"| decoding | style {a['label']} | style {b['label']} | failures {a['label']} | failures {b['label']} "
             f"| QA {a['label']} | QA {b['label']} | multi-turn {a['label']} | multi-turn {b['label']} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, x in a["by_decoding"].items():
        y = b["by_decoding"].get(name)
        if y is None:
            continue
        lines.append(f"| {name} | {x['style_score']:.3f} | {y['style_score']:.3f} | {x['failure_rate']:.1%} | {y['failure_rate']:.1%} "
                     f"| {x['qa_accuracy']:.0%} | {y['qa_accuracy']:.0%} | {x['multi_turn_score']:.1%} | {y['multi_turn_score']:.1%} |")
    return lines


def describe(decoding: dict) -> str:
    return (f"temperature {decoding['temperature']}, top-p {decoding['top_p']}, min-p {decoding['min_p']}, "
            f"repetition penalty {decoding['repetition_penalty']} over the {decoding.get('repetition_scope', 'context')}, "
            f"seed {decoding['seed']} (per prompt)")


def write_report(a: dict, b: dict, out: Path, decision: GateDecision | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(a, b, out)
    A, B = a["label"], b["label"]
    lines = [f"# {A} vs {B}", "",
             f"Held-out set ({a.get('heldout', 'evals/')}): {len(a['persona'])} persona conversations, {len(a['qa'])} generic questions, "
             f"{len(a['scripts'])} scripted multi-turn conversations. Metrics below in the {a.get('gate_decoding', 'greedy')} "
             f"decoding (the gate's), at most {a['settings']['max_new_tokens']} new tokens, seed {a['settings']['seed']}.", ""]
    if decision is not None:
        lines += [f"**Gate: {'PASSED' if decision.passed else 'FAILED'}**: " + "; ".join(decision.reasons), ""]
    lines += [f"| metric | {A} | {B} | better |", "|---|---|---|---|"]
    lines += [f"| {t} | {x} | {y} | {m} |" for t, x, y, m in summary_rows(a, b)]
    lines += decoding_rows(a, b)
    lines += ["", f"![metrics]({charts[0]})", "", "## Failure rates", "",
              f"Over {len(a['persona']) + sum(len(s['turns']) for s in a['scripts'])} replies (persona prompts and multi-turn turns).", "",
              f"| failure | {A} | {B} |", "|---|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {a['failures'][k]:.1%} | {b['failures'][k]:.1%} |" for k in FAILURE_KINDS]
    lines += ["", f"![failures]({charts[1]})", "", "## Generic QA retention", "",
              f"| question | {A} | {B} |", "|---|---|---|"]
    lines += [f"| {cell(x['question'])} | {'✔' if x['correct'] else '✘'} {cell(x['reply'])} | {'✔' if y['correct'] else '✘'} {cell(y['reply'])} |"
              for x, y in zip(a["qa"], b["qa"])]
    lines += ["", "## Multi-turn consistency", "",
              f"A turn passes with no failure, every expected word, and a style margin of at least {a['settings']['turn_style_min']}.", ""]
    for sa, sb in zip(a["scripts"], b["scripts"]):
        lines += [f"### {sa['name']}", "", f"| turn | you say | {A} | {B} |", "|---|---|---|---|"]
        for k, (x, y) in enumerate(zip(sa["turns"], sb["turns"]), 1):
            lines.append(f"| {k} | {cell(x['say'])} | {'✔' if x['passed'] else '✘'} {x['style']:.2f} {cell(x['reply'])} "
                         f"| {'✔' if y['passed'] else '✘'} {y['style']:.2f} {cell(y['reply'])} |")
        lines.append("")
    lines += ["## Side by side", "", f"Style margin in brackets; ⚠ marks a reply with a failure. ![style]({charts[2]})", "",
              f"| prompt | reference | {A} | {B} |", "|---|---|---|---|"]
    for x, y in zip(a["persona"], b["persona"]):
        show = lambda r: f"{'⚠ ' if r['failed'] else ''}({r['style']:.2f}) {cell(r['reply'])}"  # noqa: E731
        lines.append(f"| {cell(x['prompt'])} | {cell(x['reference'])} | {show(x)} | {show(y)} |")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps({"a": a, "b": b, "gate": decision and vars(decision)}, indent=1) + "\n")
    return out / "report.md"
