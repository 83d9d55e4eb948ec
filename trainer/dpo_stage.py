"""The pairwise preference stage: TRL's DPOTrainer on the pairs swipes make (🔄, then a pick:
core/db/swipes.py, exported by trainer/chat_logs.py), on top of the supervised candidate (or the
KTO one, when that stage ran). Each pair is (the prompt the swiped reply answered, the chosen
alternative, a rejected one). The reference policy is the adapter it starts from (TRL's frozen
"ref" copy), so DPO moves it only as far as `beta` allows; the result is published as a new
registry version whose manifest names the version it started from, and then faces the same gate."""

from __future__ import annotations

import time
from pathlib import Path

from trainer.chat_logs import PreferencePair


def run_dpo(candidate: Path, pairs: list[PreferencePair], settings, registry: Path, work: Path) -> Path:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from trainer.preference_stage import common_args, load_trainable, logged_curves, publish_stage

    started = time.perf_counter()
    model, tokenizer = load_trainable(candidate)
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    args = DPOConfig(**common_args(settings, work))
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    losses, margins = logged_curves(trainer)  # margins: chosen minus rejected implicit reward
    record = {"from": candidate.name, "pairs": len(pairs), "replies": len({p.reply_id for p in pairs}),
              "steps": trainer.state.global_step, "beta": settings.beta, "learning_rate": settings.learning_rate,
              "losses": losses, "reward_margins": margins, "wall_time_s": round(time.perf_counter() - started, 1)}
    return publish_stage(model, candidate, "dpo", record, registry)
