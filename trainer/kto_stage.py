"""The preference stage: TRL's KTOTrainer on the community's 👍/👎 and /rate scores, on top of
the supervised candidate. KTO needs no pairs: each rated reply is (prompt, completion, liked or
not). The reference policy is the supervised adapter itself (TRL copies it into a frozen "ref"
adapter), so KTO only moves the candidate as far as `beta` allows. The result is published as
a new registry version whose manifest names the supervised one it started from (loading and
publishing shared with the DPO stage: trainer/preference_stage.py)."""

from __future__ import annotations

import time
from pathlib import Path

from trainer.chat_logs import Preference


def class_weights(labels: list[bool]) -> tuple[float, float]:
    """desirable_weight, undesirable_weight such that both kinds weigh about the same in total
    (the KTO paper's recommended range: desirable total / undesirable total in [1, 4/3])."""
    liked, disliked = sum(labels), len(labels) - sum(labels)
    return (1.0, liked / disliked) if liked >= disliked else (disliked / liked, 1.0)


def run_kto(candidate: Path, preferences: list[Preference], settings, registry: Path, work: Path) -> Path:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from trainer.preference_stage import common_args, load_trainable, logged_curves, publish_stage

    started = time.perf_counter()
    model, tokenizer = load_trainable(candidate)
    labels = [p.label for p in preferences]
    desirable, undesirable = class_weights(labels)
    dataset = Dataset.from_list([{"prompt": p.prompt, "completion": p.completion, "label": p.label} for p in preferences])
    args = KTOConfig(**common_args(settings, work), desirable_weight=desirable, undesirable_weight=undesirable)
    trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    losses, margins = logged_curves(trainer)  # margins: liked minus disliked implicit reward
    record = {"from": candidate.name, "labels": len(labels), "liked": sum(labels), "disliked": len(labels) - sum(labels),
              "steps": trainer.state.global_step, "beta": settings.beta, "learning_rate": settings.learning_rate,
              "losses": losses, "reward_margins": margins, "wall_time_s": round(time.perf_counter() - started, 1)}
    return publish_stage(model, candidate, "kto", record, registry)
