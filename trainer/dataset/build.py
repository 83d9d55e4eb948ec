"""Build the dataset and report it: the library call under `python -m trainer data build`
(trainer/cli/data.py). The pipeline itself is trainer/dataset/pipeline.py."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from core.model_resolver import EMBEDDED_SPEC
from core.paths import DATA_DIR, DEFAULT_CARD, PROJECT_ROOT, state_dir

DEFAULT_QUALITY_CONFIG = PROJECT_ROOT / "config" / "data_quality.yaml"


def load_quality_settings(path: Path = DEFAULT_QUALITY_CONFIG, overrides: list[str] = ()):
    from core.config import build as build_settings, values_with_overrides
    from trainer.dataset.quality import QualitySettings

    return build_settings(QualitySettings, values_with_overrides(path, overrides, "max_reply_uses=5", required=False), str(path))


def token_counter(tokenizer):
    from core.prompt import render_chat

    def count(messages: list[dict[str, str]]) -> int:
        return len(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])

    return count


def build(data: Path = DATA_DIR, card: Path = DEFAULT_CARD, out: Path | None = None, *, model: str = EMBEDDED_SPEC,
          max_tokens: int | None = None, eval_fraction: float = 0.05, seed: int = 0, rejects: Path | None = None,
          quality=None, console: Console | None = None):
    """Ingest, validate, de-duplicate and split `data` for `card`, write the dataset to `out`
    (default state/dataset), print its statistics and draw its chart. Samples are measured with
    `model`'s tokenizer against `max_tokens` (default: the model's context). With `quality`
    (QualitySettings), the data-quality report is printed and saved beside the dataset."""
    from core.errors import UserError
    from core.model_resolver import context_length, load_tokenizer
    from core.persona import load_card
    from trainer.dataset.pipeline import build_dataset
    from rich.markup import escape

    from trainer.dataset.stats import print_table

    console = console or Console()
    if not 0 <= eval_fraction < 1:
        raise UserError(f"--eval-fraction: must be at least 0 and below 1, got {eval_fraction}")
    persona = load_card(card)
    tokenizer = load_tokenizer(model)
    max_tokens = max_tokens or context_length(model)
    out = out or state_dir() / "dataset"
    result = build_dataset(data, persona, out, max_tokens=max_tokens, count_tokens=token_counter(tokenizer),
                           eval_fraction=eval_fraction, seed=seed, rejects=rejects)
    print_table(result.composition, console, title=f"{persona.name} dataset")
    console.print(f"train {len(result.train):,} / eval {len(result.eval):,} (eval fraction {eval_fraction}, seed {seed}); "
                  f"max {max_tokens:,} tokens a sample ({model} tokenizer)")
    console.print(f"duplicates removed: {len(result.duplicates)} "
                  f"({sum(d.exact for d in result.duplicates)} exact, {sum(not d.exact for d in result.duplicates)} after normalizing)")
    for duplicate in result.duplicates[:5]:
        console.print(f"  {duplicate}", markup=False)
    if result.problems:
        console.print(f"[yellow]{result.rejected_rows} row(s) rejected ({len(result.problems)} problem(s)), written to {escape(str(rejects))}[/]")
        for problem in result.problems[:10]:
            console.print(f"  {problem}", markup=False)
    else:
        console.print("validation errors: 0")
    console.print(f"wrote {out}/train.jsonl, eval.jsonl, dataset.json, composition.png", markup=False)
    if quality is not None:
        from trainer.dataset.quality import assess, print_report, write_report

        report = assess(result.train + result.eval, quality)
        print_report(report, console)
        write_report(report, out)
        console.print(f"data quality: {len(report.warnings)} warning(s); wrote {out}/quality.md, quality.json, quality.png",
                      markup=False)
    return result
