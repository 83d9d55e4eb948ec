"""The pairwise preference stage: TRL's DPOTrainer on swipe pairs, on top of a supervised
adapter, published as a new version that names where it started; and its skip rule."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from safetensors.torch import load_file

from core.prompt import Turn, generation_prompt
from trainer.chat_logs import LogExport, PreferencePair
from trainer.dpo_stage import run_dpo
from core.errors import UserError
from core.paths import PROJECT_ROOT
from trainer.retrain import DPOSettings, load_retrain_settings, maybe_dpo

# (question, the alternative people picked, the one they swiped away)
SWIPED = [("Who are you?", "I'm Lord Inosuke! King of the Mountains!", "I am an AI assistant and I am here to help you."),
          ("Fight me!", "HAH! Come at me with everything you've got!", "I'd rather not fight. Violence is never the answer.")]


def test_dpo_settings_are_range_checked(tmp_path):
    path = tmp_path / "retrain.yaml"
    path.write_text("dpo:\n  enabled: true\n  min_pairs: 0\n")
    with pytest.raises(UserError) as error:
        load_retrain_settings(path)
    assert str(error.value).startswith(str(path)) and str(error.value).endswith("dpo.min_pairs: must be at least 1, got 0")
    assert load_retrain_settings(PROJECT_ROOT / "config" / "retrain.yaml").dpo == DPOSettings()  # shipped: the defaults, off


def test_too_few_pairs_skip_the_stage_with_a_reason(tmp_path):
    console = Console(record=True, width=200)
    export = LogExport(pairs=[PreferencePair(7, "prompt", "chosen", "rejected")])
    assert maybe_dpo(DPOSettings(enabled=True, min_pairs=2), tmp_path / "candidate", export, tmp_path, tmp_path, console) is None
    assert console.export_text().strip() == "DPO stage skipped: 1 swipe pair(s) from 1 repl(ies); needs at least 2"


def test_both_preference_stages_train_in_float32_on_cpu_as_the_supervised_stage_does(tmp_path):
    """TRL's DPO and KTO configs default to bf16 on any device; on a CPU without native bf16 its
    emulated matmuls made this file's DPO test 9x slower, for no gain in quality."""
    import torch
    from trl import DPOConfig, KTOConfig

    from trainer.preference_stage import common_args
    from trainer.retrain import KTOSettings

    if torch.cuda.is_available():
        pytest.skip("on a GPU the stages train in bf16, as the supervised stage does")
    for config, settings in ((DPOConfig, DPOSettings()), (KTOConfig, KTOSettings())):
        args = config(**common_args(settings, tmp_path))
        assert (args.bf16, args.fp16, args.use_cpu) == (False, False, True), config.__name__


def test_dpo_stage_moves_the_adapter_towards_chosen_alternatives(trained_adapter, tokenizer, persona, tmp_path):
    candidate = trained_adapter.adapter
    pairs = [PreferencePair(i, generation_prompt(tokenizer, persona, [Turn(q)]), chosen, rejected)
             for i, (q, chosen, rejected) in enumerate(SWIPED)]
    # Each step's batch is every pair: the same gradient as the two pairs twice over in a batch of
    # 4 (DPO's loss is a mean), at half the cost (a step took 30 s on one core).
    published = run_dpo(candidate, pairs, DPOSettings(enabled=True, min_pairs=2, max_steps=2, batch_size=2,
                                                      learning_rate=2e-4), candidate.parent, tmp_path / "dpo")

    assert published.parent == candidate.parent and published.name != candidate.name
    dpo = json.loads((published / "manifest.json").read_text())["dpo"]
    assert (dpo["from"], dpo["pairs"], dpo["replies"], dpo["steps"]) == (candidate.name, 2, 2, 2)
    assert dpo["reward_margins"][-1] > 0  # chosen alternatives now likelier than rejected ones, relative to the start
    before, after = load_file(candidate / "adapter_model.safetensors"), load_file(published / "adapter_model.safetensors")
    assert before.keys() == after.keys()  # the frozen reference copy TRL adds is not saved
    assert any(not before[k].equal(after[k]) for k in before)
