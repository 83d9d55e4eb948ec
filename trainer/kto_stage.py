"""The preference stage: TRL's KTOTrainer on the community's 👍/👎 and /rate scores, on top of
the supervised candidate. KTO needs no pairs: each rated reply is (prompt, completion, liked or
not). The reference policy is the supervised adapter itself (TRL copies it into a frozen "ref"
adapter), so KTO only moves the candidate as far as `beta` allows. The result is published as
a new registry version whose manifest names the supervised one it started from."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from trainer.chat_logs import Preference


def class_weights(labels: list[bool]) -> tuple[float, float]:
    """desirable_weight, undesirable_weight such that both kinds weigh about the same in total
    (the KTO paper's recommended range: desirable total / undesirable total in [1, 4/3])."""
    liked, disliked = sum(labels), len(labels) - sum(labels)
    return (1.0, liked / disliked) if liked >= disliked else (disliked / liked, 1.0)


def run_kto(candidate: Path, preferences: list[Preference], settings, registry: Path, work: Path) -> Path:
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from trl import KTOConfig, KTOTrainer

    from core.registry import read_adapter
    from core.model_resolver import load_model, load_tokenizer
    from core import registry as adapter_registry
    from trainer.qlora import keep_4bit_layers_differentiable

    started = time.perf_counter()
    info = read_adapter(candidate)
    tokenizer = load_tokenizer(info.base_model)
    base = load_model(info.base_model, info.quantization)
    keep_4bit_layers_differentiable(base)
    model = PeftModel.from_pretrained(base, str(candidate), is_trainable=True)
    labels = [p.label for p in preferences]
    desirable, undesirable = class_weights(labels)
    dataset = Dataset.from_list([{"prompt": p.prompt, "completion": p.completion, "label": p.label} for p in preferences])
    args = KTOConfig(
        output_dir=str(work), max_steps=settings.max_steps, learning_rate=settings.learning_rate, beta=settings.beta,
        per_device_train_batch_size=settings.batch_size, desirable_weight=desirable, undesirable_weight=undesirable,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
        max_length=1024, seed=0, disable_tqdm=True, gradient_checkpointing=torch.cuda.is_available(),
    )
    trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e and "rewards/margins" in e]
    losses = [round(float(e["loss"]), 4) for e in logged]
    margins = [round(float(e["rewards/margins"]), 4) for e in logged]  # liked minus disliked implicit reward

    if "ref" in model.peft_config:
        model.delete_adapter("ref")  # the frozen copy TRL made as the reference: not part of the result
    manifest = json.loads((candidate / "manifest.json").read_text())
    manifest["kto"] = {"from": candidate.name, "labels": len(labels), "liked": sum(labels), "disliked": len(labels) - sum(labels),
                       "steps": trainer.state.global_step, "beta": settings.beta, "learning_rate": settings.learning_rate,
                       "losses": losses, "reward_margins": margins, "wall_time_s": round(time.perf_counter() - started, 1)}
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
