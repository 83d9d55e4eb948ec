"""The preference stage: TRL's KTOTrainer on rated replies, on top of a supervised adapter,
published as a new version that names where it started; and the class balance."""

from __future__ import annotations

import json

from safetensors.torch import load_file

from core.prompt import Turn, generation_prompt
from trainer.chat_logs import Preference
from trainer.kto_stage import class_weights, run_kto
from trainer.retrain import KTOSettings

RATED = [("Who are you?", "I'm Lord Inosuke! King of the Mountains!", True),
         ("Who are you?", "I am an AI assistant and I am here to help you.", False),
         ("Fight me!", "HAH! Come at me with everything you've got!", True),
         ("Fight me!", "I'd rather not fight. Violence is never the answer.", False)]


def test_weights_balance_liked_and_disliked():
    assert class_weights([True, False]) == (1.0, 1.0)
    assert class_weights([True, True, True, False]) == (1.0, 3.0)
    assert class_weights([True, False, False, False, False]) == (4.0, 1.0)


def test_kto_stage_moves_the_adapter_towards_liked_replies(trained_adapter, tokenizer, persona, tmp_path):
    candidate = trained_adapter.adapter
    preferences = [Preference(i, generation_prompt(tokenizer, persona, [Turn(q)]), a, liked)
                   for i, (q, a, liked) in enumerate(RATED * 2)]
    published = run_kto(candidate, preferences, KTOSettings(enabled=True, min_labels=4, max_steps=2, batch_size=4,
                                                            learning_rate=2e-4), candidate.parent, tmp_path / "kto")

    assert published.parent == candidate.parent and published.name != candidate.name
    kto = json.loads((published / "manifest.json").read_text())["kto"]
    assert (kto["from"], kto["labels"], kto["liked"], kto["steps"]) == (candidate.name, 8, 4, 2)
    assert kto["reward_margins"][-1] > 0  # liked replies now more likely than disliked ones, relative to the start
    before, after = load_file(candidate / "adapter_model.safetensors"), load_file(published / "adapter_model.safetensors")
    assert before.keys() == after.keys()  # the frozen reference copy TRL adds is not saved
    assert any(not before[k].equal(after[k]) for k in before)
