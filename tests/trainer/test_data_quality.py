"""The data-quality report of `trainer data build`, on a small flawed dataset and on the curated
data: each finding names file and line, warnings never stop the build."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from trainer.dataset.build import build, load_quality_settings

FLAWED = Path(__file__).parent.parent / "assets" / "flawed_data"


def test_a_flawed_dataset_gets_warnings_naming_file_and_line(tmp_path, persona):
    console = Console(record=True, width=200)
    settings = load_quality_settings(overrides=["max_reply_words=40", "coherence_closer_prompts=100"])
    result = build(FLAWED, out=tmp_path, quality=settings, console=console)  # a warning is not an error
    shown = console.export_text()
    report = json.loads((tmp_path / "quality.json").read_text())
    warned = {f["name"]: f for f in report["findings"] if f["warning"]}
    assert len(result.train) + len(result.eval) == 14
    assert {"distinct replies", "near-duplicate replies", "reply lengths", "over-used phrases"} <= set(warned)
    assert "5x 'HAH! Lord Inosuke is the strongest" in warned["distinct replies"]["examples"][0]
    assert "flawed_data/persona.jsonl:6" in " ".join(warned["near-duplicate replies"]["examples"])
    assert "flawed_data/persona.jsonl:8" in warned["reply lengths"]["examples"][0]
    assert "warning: distinct replies" in shown and "persona.jsonl:1" in shown
    for name in ("quality.md", "quality.png"):
        assert (tmp_path / name).stat().st_size > 500


def test_the_curated_data_has_a_clean_report(tmp_path):
    build(out=tmp_path, quality=load_quality_settings(), console=Console(width=200))
    report = json.loads((tmp_path / "quality.json").read_text())
    assert [f["name"] for f in report["findings"] if f["warning"]] == []
    assert report["distinct_lines"] == report["persona_lines"] >= 2500
