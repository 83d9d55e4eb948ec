"""Real QLoRA runs of the embedded model through `python -m trainer train`'s code path, with
tiny step counts: best checkpoint, resume after Ctrl-C, manifest, reload, stopping."""

from __future__ import annotations

import json
import os
import signal
import statistics

import pytest
import torch
from safetensors.torch import load_file

from core.registry import read_adapter
from core.served_model import load_served
from core.generate import generate
from core.model_resolver import EMBEDDED_SPEC, load_model
from core.prompt import Turn, generation_prompt
from trainer import qlora
from trainer.train import library_versions, read_run
from trainer.train import train as train_adapter

# A deliberately high, constant learning rate: the eval loss falls, then climbs, so the best checkpoint is
# not the last one and keeping the right one matters.
SHORT = ["max_steps=6", "eval_every=2", "eval_max_samples=4", "batch_size=1", "learning_rate=2e-2", "warmup_ratio=0",
         "lr_scheduler=constant", "max_seq_len=512"]  # rows of 512: half the cost of the profile's 1024 a step
QUESTIONS = ["Who are you?", "What's your favorite food?", "Do you like trains?", "What do you think of Zenitsu?",
             "Where is Tanjiro?", "Fight me!", "Good morning!", "Are you hungry?"]


pytestmark = pytest.mark.training


def train(tmp, overrides, resume=None):
    return train_adapter(None if resume else "smollm2-cpu", overrides=overrides, resume=resume, runs=tmp / "runs",
                         registry=tmp / "adapters")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, model_cache):
    return train(tmp_path_factory.mktemp("short"), SHORT)


def test_best_checkpoint_by_eval_loss_becomes_the_adapter(short_run):
    manifest = short_run.manifest
    training = manifest["training"]
    evals = {e["step"]: e["eval_loss"] for e in training["evals"]}
    assert set(evals) == {2, 4, 6}
    best_step = min(evals, key=evals.get)
    assert training["best_step"] == best_step and training["best_eval_loss"] == pytest.approx(evals[best_step])
    assert best_step != 6, f"the high learning rate should make a middle checkpoint the best: {evals}"
    # The published weights are the best checkpoint's, not the last step's.
    published = load_file(short_run.adapter / "adapter_model.safetensors")
    best = load_file(short_run.run_dir / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    assert published.keys() == best.keys()
    for key in published:
        torch.testing.assert_close(published[key].float(), best[key].float())


def test_manifest_says_what_a_user_needs(short_run):
    m = json.loads((short_run.adapter / "manifest.json").read_text())
    dataset = json.loads((short_run.run_dir / "dataset" / "dataset.json").read_text())
    assert m["version"] == short_run.adapter.name == "v0001"
    assert (m["base_model"], m["quantization"], m["prompt_format"], m["end_of_turn_token"]) == (EMBEDDED_SPEC, "nf4", "chat", "<|im_end|>")
    assert m["profile"]["name"] == "smollm2-cpu" and m["profile"]["max_steps"] == 6 and m["profile"]["learning_rate"] == 2e-2
    assert m["data"]["hash"] == dataset["data_hash"]
    assert (m["data"]["train_samples"], m["data"]["eval_samples"], m["data"]["eval_samples_scored"]) == (dataset["train"], dataset["eval"], 4)
    t = m["training"]
    assert t["steps"] == 6 and t["wall_time_s"] > 0 and t["peak_memory_gib"] > 0.2 and t["peak_memory_kind"] == "cpu_peak_rss"
    assert t["peak_memory_reserved_gib"] is None  # a GPU's caching allocator only
    assert t["padding_fraction"] == 0.0 and t["trained_tokens_per_s"] > 0
    assert m["libraries"] == library_versions()
    assert (short_run.adapter / "training_curve.png").stat().st_size > 10_000
    assert read_run(short_run.run_dir)["status"] == "finished"


def test_adapter_reloads_with_plain_peft_and_changes_generations(short_run, persona, tokenizer):
    from peft import PeftModel

    prompt = generation_prompt(tokenizer, persona, [Turn("Who are you?")])
    base = load_model(EMBEDDED_SPEC, "nf4")
    before = generate(base, tokenizer, [prompt], 24)[0].text
    adapted = PeftModel.from_pretrained(base, str(short_run.adapter))
    after = generate(adapted, tokenizer, [prompt], 24)[0].text
    assert after != before
    assert read_adapter(short_run.adapter).base_model == EMBEDDED_SPEC


def test_resume_after_ctrl_c_repeats_no_data_and_loses_no_progress(short_run, tmp_path, monkeypatch):
    """Interrupted with a real SIGINT during step 5 (off the save schedule), resumed: the steps after the interruption see
    the same batches and give the same losses as the uninterrupted run."""
    original = qlora.progress_callback

    def progress_then_ctrl_c(*args, **kwargs):
        callback = original(*args, **kwargs)
        step_end = callback.on_step_end

        def on_step_end(args_, state, control, **kw):
            step_end(args_, state, control, **kw)
            if state.global_step == 4:
                os.kill(os.getpid(), signal.SIGINT)

        callback.on_step_end = on_step_end
        return callback

    monkeypatch.setattr(qlora, "progress_callback", progress_then_ctrl_c)
    stopped = train(tmp_path, SHORT)
    assert stopped.interrupted and stopped.adapter is None
    assert read_run(stopped.run_dir)["status"] == "interrupted"
    assert not (tmp_path / "adapters").exists() or not list((tmp_path / "adapters").glob("v*"))
    checkpoints = sorted(p.name for p in (stopped.run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints[-1] == "checkpoint-5"  # the step in progress finished and was saved

    monkeypatch.setattr(qlora, "progress_callback", original)
    resumed = train(tmp_path, [], resume="latest")
    assert not resumed.interrupted and resumed.run_dir == stopped.run_dir
    reference = {h["step"]: h["loss"] for h in short_run.manifest["training"]["train_losses"]}
    after = {h["step"]: h["loss"] for h in resumed.manifest["training"]["train_losses"]}
    assert after[5] == pytest.approx(reference[5], rel=1e-4)  # from the checkpoint's history
    for step in (6,):
        assert after[step] == pytest.approx(reference[step], rel=1e-4), step
    assert resumed.manifest["training"]["best_eval_loss"] == pytest.approx(short_run.manifest["training"]["best_eval_loss"], rel=1e-4)
    assert resumed.manifest["training"]["eval_loss_before"] == pytest.approx(short_run.manifest["training"]["eval_loss_before"])


def test_trained_adapter_stops_at_end_of_turn(trained_adapter, persona, tokenizer):
    """After a short run at the profile's own learning rate, replies end with the end-of-turn
    token well before the limit (the untuned base model runs on for some of these)."""
    outcome = trained_adapter
    assert outcome.manifest["training"]["best_eval_loss"] < outcome.manifest["training"]["eval_loss_before"] - 0.3
    limit = 96
    prompts = [generation_prompt(tokenizer, persona, [Turn(q)]) for q in QUESTIONS]
    base = generate(load_model(EMBEDDED_SPEC, "nf4"), tokenizer, prompts, limit)
    adapter = load_served(outcome.adapter)
    adapted = generate(adapter.model, adapter.tokenizer, prompts, limit)
    # A 24-step adapter still rambles on a question now and then (which one depends on the CPU's
    # bf16 kernels and the order of float sums in training: one of four, once, after the attention
    # changed), so ending is asked of at least three replies in four, and of more than the base
    # ends; "well before the limit" of the typical reply.
    ended, base_ended = sum(a.ended for a in adapted), sum(b.ended for b in base)
    assert ended >= len(QUESTIONS) * 3 // 4 and ended > base_ended, (ended, base_ended, adapted)
    assert statistics.median(a.new_tokens for a in adapted) <= limit // 2, adapted


def test_chat_command_holds_a_conversation_with_the_adapter(short_run, capsys):
    from trainer.__main__ import main

    assert main(["chat", "--adapter", str(short_run.adapter), "--say", "Who are you?", "--say", "Fight me!",
                 "--max-new-tokens", "16"]) == 0
    out = capsys.readouterr().out.splitlines()
    # Turns start at the margin; a reply's own line breaks (a 6-step adapter at 2e-2 may write
    # anything) and the "[N tokens, stopped at ...]" lines are indented under them.
    turns = [(i, line) for i, line in enumerate(out) if not line.startswith(" ")]
    assert [line.split(": ")[0] for _, line in turns] == ["You", "Inosuke", "You", "Inosuke"], out
    assert turns[0][1] == "You: Who are you?" and turns[2][1] == "You: Fight me!"
    first_reply = out[turns[1][0]:turns[2][0]]
    assert "stopped at" in first_reply[-1] and "stopped at" in out[-1], out
