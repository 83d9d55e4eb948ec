"""A second, original character (tests/assets/second_character: Marisol Quill, a lighthouse
keeper) trained and evaluated with no Inosuke-specific file: her card is the system prompt, her
dataset's eval split is her held-out set (evals/ is Inosuke's), and the gate compares on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from trainer.evaluation.compare import compare
from trainer.evaluation.evaluate import EvalSettings
from trainer.evaluation.heldout import EVALS_DIR
from trainer.train import train

CHARACTER = Path(__file__).parent.parent / "assets" / "second_character"

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def marisol(tmp_path_factory, model_cache):
    tmp = tmp_path_factory.mktemp("marisol")
    return train("smollm2-cpu", overrides=[f"data={CHARACTER / 'data'}", f"card={CHARACTER / 'card.json'}", "max_steps=8",
                                           "eval_every=8", "learning_rate=3e-4", "max_seq_len=512"], runs=tmp / "runs", registry=tmp / "adapters")


def test_her_adapter_is_evaluated_on_her_own_eval_split(marisol, tmp_path):
    split = [json.loads(line) for line in (marisol.adapter / "eval_split.jsonl").read_text().splitlines()]
    assert split and all(row["messages"][0]["content"].startswith("You are Marisol Quill.") for row in split)

    result = compare(str(marisol.adapter), "base", settings=EvalSettings(max_new_tokens=24), limit=3, out=tmp_path)
    a, b = result.a, result.b
    assert "eval split of Marisol Quill's dataset" in a["heldout"] == b["heldout"]
    assert [row["reference"] for row in a["persona"]] == [row["messages"][-1]["content"] for row in split[:3]]
    leaks = [(side["label"], key, value) for side in (a, b) for row in side["persona"] for key, value in row.items()
             if "Inosuke" in json.dumps(value)]
    assert not leaks, leaks
    assert len(a["qa"]) == 3  # generic QA retention is kept: it does not depend on the character
    assert a["eval_loss"] < b["eval_loss"]  # even 8 steps of her data lower the loss on her held-out replies
    report = (tmp_path / "report.md").read_text()
    assert "eval split of Marisol Quill's dataset" in report


def test_her_adapter_refuses_inosukes_heldout_folder(marisol):
    with pytest.raises(UserError, match="written for Inosuke Hashibira, not Marisol Quill"):
        compare(str(marisol.adapter), "base", heldout=EVALS_DIR, limit=1)
