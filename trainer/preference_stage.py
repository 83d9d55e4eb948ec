"""What the preference stages (trainer/kto_stage.py, trainer/dpo_stage.py) share: the supervised
candidate loaded trainable on its own base model, the TRL arguments both set the same way, the
figures read from TRL's log, and publishing the result as a new registry version whose manifest
names the version it started from. The reference policy is the candidate itself: TRL copies it
into a frozen "ref" adapter, which is dropped before saving (it is not part of the result)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def load_trainable(candidate: Path):
    """(model, tokenizer): the candidate adapter, trainable, on its 4-bit (or full) base."""
    from peft import PeftModel

    from core.model_resolver import load_model, load_tokenizer
    from core.registry import read_adapter
    from trainer.qlora import keep_4bit_layers_differentiable, score_only_trained_positions

    score_only_trained_positions()  # KTO and DPO score the replies through the same fused LM head
    info = read_adapter(candidate)
    tokenizer = load_tokenizer(info.base_model)
    base = load_model(info.base_model, info.quantization)
    keep_4bit_layers_differentiable(base)
    return PeftModel.from_pretrained(base, str(candidate), is_trainable=True), tokenizer


def common_args(settings, work: Path) -> dict:
    """TRL config arguments both stages use (settings: KTOSettings or DPOSettings)."""
    import torch

    on_gpu = torch.cuda.is_available()
    # bf16 as the supervised stage has it: on a GPU only. TRL's KTO and DPO configs default to bf16
    # everywhere, and on a CPU without native bf16 (AVX2 only) its emulated matmuls made the DPO
    # test's two steps take 428 s instead of 47 (the KTO test: 259 s instead of 37).
    return dict(output_dir=str(work), max_steps=settings.max_steps, learning_rate=settings.learning_rate, beta=settings.beta,
                per_device_train_batch_size=settings.batch_size, logging_steps=1, save_strategy="no", report_to=[],
                use_cpu=not on_gpu, bf16=on_gpu, max_length=1024, seed=0, disable_tqdm=True,
                gradient_checkpointing=on_gpu)


def logged_curves(trainer) -> tuple[list[float], list[float]]:
    """The loss and the reward margin (preferred minus dispreferred implicit reward) per step."""
    logged = [e for e in trainer.state.log_history if "loss" in e and "rewards/margins" in e]
    return [round(float(e["loss"]), 4) for e in logged], [round(float(e["rewards/margins"]), 4) for e in logged]


def publish_stage(model, candidate: Path, stage: str, record: dict, registry: Path) -> Path:
    """Save the trained adapter as a new registry version; its manifest is the candidate's with
    `stage: record` added (record["from"] names the candidate)."""
    from core import registry as adapter_registry

    if "ref" in model.peft_config:
        model.delete_adapter("ref")  # the frozen copy TRL made as the reference
    manifest = json.loads((candidate / "manifest.json").read_text())
    manifest[stage] = record
    staged = adapter_registry.staging_dir(registry)
    try:
        model.save_pretrained(staged)
        for extra in ("training_curve.png",):
            if (candidate / extra).exists():
                shutil.copy2(candidate / extra, staged / extra)
        return adapter_registry.publish(staged, manifest, registry)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
