"""Train an adapter with a profile: `train("smollm2-cpu", overrides=["max_steps=20"])`, the
library call under `python -m trainer train` (trainer/cli/train.py).

A run lives in state/runs/<id>/: the resolved profile and status (run.json), the dataset it was
built from, and the checkpoints. The best checkpoint by eval loss becomes a new adapter version
in the registry. Ctrl-C (or a crash) leaves the run resumable from its last checkpoint.

Under `accelerate launch` (several processes, data parallel; trainer/distributed.py) every
process trains, and the main one alone builds the run folder, writes run.json and publishes (and
promotes) the one adapter; the others get its paths.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import UserError
from core.files import write_json
from core.registry import EVAL_SPLIT
from core.paths import project_path, state_dir

RUN_FILE = "run.json"


@dataclass
class TrainOutcome:
    adapter: Path | None
    manifest: dict | None
    run_dir: Path
    interrupted: bool


def read_run(run_dir: Path) -> dict:
    """A run's record, checked: an object with its status and the profile it started with."""
    path = run_dir / RUN_FILE
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError) as exc:
        raise UserError(f"{path}: unreadable run record ({type(exc).__name__})") from None
    if not (isinstance(run, dict) and isinstance(run.get("status"), str) and isinstance(run.get("profile"), dict)):
        raise UserError(f"{path}: expected a run record with a status and a profile")
    return run


def write_run(run_dir: Path, run: dict) -> None:
    write_json(run_dir / RUN_FILE, run)


def unfinished(run_dir: Path) -> bool:
    """Whether `--resume` may pick this run; a damaged run record is skipped, with a note, so
    that it cannot make every other run impossible to resume."""
    try:
        return read_run(run_dir)["status"] != "finished"
    except UserError as exc:
        print(f"skipped: {exc}")
        return False


def find_resumable(runs: Path, which: str) -> Path:
    if which != "latest":
        run_dir = Path(which) if Path(which).is_dir() else runs / which
        if not (run_dir / RUN_FILE).is_file():
            raise UserError(f"--resume {which}: no such run (looked in {runs})")
        return run_dir
    candidates = sorted((p for p in runs.glob("*") if (p / RUN_FILE).is_file() and unfinished(p)),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"--resume: no unfinished run in {runs}")
    return candidates[-1]


def library_versions() -> dict:
    import bitsandbytes
    import peft
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "trl": trl.__version__, "bitsandbytes": bitsandbytes.__version__}


def peak_memory() -> tuple[float, str, float | None]:
    """Peak GPU memory allocated by torch, or this process's peak resident memory on CPU, in GiB;
    on a GPU also the peak its caching allocator reserved (what the device had to hold, and what
    a card of that size must have: fragmentation included), else None."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "cuda_max_allocated", torch.cuda.max_memory_reserved() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu_peak_rss", None


def new_run(profile, runs: Path, rejects: Path | None = None) -> tuple[Path, dict]:
    """A fresh run folder with the profile resolved and the dataset built from its data (bad rows
    set aside in `rejects` and reported, when given; else they stop the run)."""
    from core.model_resolver import load_tokenizer
    from core.persona import load_card
    from trainer.dataset.build import token_counter
    from trainer.dataset.pipeline import build_dataset

    tokenizer = load_tokenizer(profile.model)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{profile.name}"
    run_dir = runs / stamp
    for n in range(2, 1000):  # two runs started in the same second get -2, -3, ...
        if not run_dir.exists():
            break
        run_dir = runs / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    persona = load_card(project_path(profile.card))
    # Samples longer than max_seq_len are validation errors here, like any other bad row.
    result = build_dataset(project_path(profile.data), persona, run_dir / "dataset", max_tokens=profile.max_seq_len,
                           count_tokens=token_counter(tokenizer), eval_fraction=profile.eval_fraction, seed=profile.seed,
                           rejects=rejects)
    run = {"profile": profile.to_dict(), "status": "running", "started": datetime.now(timezone.utc).isoformat(),
           "seconds": 0.0, "eval_loss_before": None, "rejected_rows": len(result.problems)}
    if result.problems:
        print(f"{len(result.problems)} bad row(s) set aside in {rejects}:")
        for problem in result.problems[:10]:
            print(f"  {problem}")
    write_run(run_dir, run)
    print(f"run {run_dir.name}: {len(result.train)} train / {len(result.eval)} eval samples "
          f"(data hash {result.data_hash[:12]})")
    return run_dir, run


def resumed_run(which: str, runs: Path):
    """The interrupted run to continue, and the profile it started with."""
    from core.config import build
    from trainer.profile import Profile

    run_dir = find_resumable(runs, which)
    run = read_run(run_dir)
    return run_dir, run, build(Profile, run["profile"], str(run_dir / RUN_FILE))


def show_masks(profile: str, overrides: Sequence[str] = ()) -> str:
    """One rendered sample of the profile's data (a multi-turn one shows the masking best) with
    its trained tokens between ⟦ and ⟧."""
    import tempfile

    from core.model_resolver import load_tokenizer
    from core.files import read_jsonl
    from trainer.encode import show_masks as marked
    from trainer.profile import load_profile

    chosen = load_profile(profile, overrides)
    with tempfile.TemporaryDirectory() as runs:
        run_dir, _ = new_run(chosen, Path(runs))
        rows = read_jsonl(run_dir / "dataset" / "train.jsonl")
    sample = max(rows, key=lambda r: len(r["messages"]))
    return (f"{sample['origin']} in {chosen.prompt_format} format; trained tokens between ⟦ and ⟧:\n\n"
            + marked(load_tokenizer(chosen.model), sample, chosen.prompt_format))


def train(profile: str | None = None, *, overrides: Sequence[str] = (), resume: str | None = None, promote: bool = True,
          runs: Path | None = None, registry: Path | None = None, rejects: Path | None = None) -> TrainOutcome:
    """Train an adapter with `profile` (a name in trainer/profiles/ or a YAML path) and `overrides`
    (`KEY=VALUE`), or continue the interrupted run `resume` ("latest" or a run id) with the profile
    it started with. The adapter is published as the next registry version and, with `promote`,
    put in service (retraining promotes only through its gate). Runs under the training lock:
    raises TrainingRunning at once when another training holds it."""
    from contextlib import nullcontext

    from core.training_lock import training_lock
    from trainer import distributed

    # Under accelerate launch the main process holds the lock for all of them.
    with training_lock() if distributed.is_main() else nullcontext():
        return train_locked(profile, overrides, resume, promote, runs, registry, rejects)


def train_locked(profile, overrides, resume, promote, runs, registry, rejects) -> TrainOutcome:
    from core.model_resolver import load_model, resolve
    from core import registry as adapter_registry
    from trainer import distributed
    from trainer.curves import draw_training_curve
    from core.files import read_jsonl
    from trainer.profile import load_profile
    from trainer.qlora import make_trainer, run_training

    runs = runs or state_dir() / "runs"
    main = distributed.is_main()
    if resume:
        if (overrides or profile) and main:
            print("resuming with the profile the run started with; --profile/--set are ignored")
        run_dir, run, chosen = resumed_run(distributed.share(str(find_resumable(runs, resume)) if main else None), runs)
    elif not profile:
        raise UserError("--profile is required (e.g. --profile smollm2-cpu), or --resume")
    else:
        chosen = load_profile(profile, overrides)
        # The main process builds the run folder and its dataset; the others train on the same.
        run_dir = Path(distributed.share(str(new_run(chosen, runs, rejects)[0]) if main else None))
        run = read_run(run_dir)
    profile = chosen
    from core.model_resolver import load_tokenizer

    tokenizer = load_tokenizer(profile.model)
    started = time.perf_counter()
    train_rows = read_jsonl(run_dir / "dataset" / "train.jsonl")
    eval_rows = read_jsonl(run_dir / "dataset" / "eval.jsonl")[: profile.eval_max_samples or None]
    model = load_model(profile.model, profile.quantization, device=distributed.device())
    trainer = make_trainer(model, tokenizer, train_rows, eval_rows, profile, str(run_dir / "checkpoints"))
    try:
        result = run_training(trainer, resume=bool(resume), eval_before=run["eval_loss_before"] is None)
    except BaseException:
        if main:
            run.update(status="failed", seconds=run["seconds"] + time.perf_counter() - started)
            write_run(run_dir, run)
        raise
    if result.eval_loss_before is not None:
        run["eval_loss_before"] = result.eval_loss_before
    run["seconds"] += time.perf_counter() - started
    state = trainer.state
    if result.interrupted:
        if main:
            run["status"] = "interrupted"
            write_run(run_dir, run)
            print(f"interrupted at step {state.global_step}/{state.max_steps}; continue with: "
                  f"python -m trainer train --resume {run_dir.name}")
        return TrainOutcome(None, None, run_dir, True)
    if not main:  # one adapter, published once: by the main process, below
        adapter = distributed.share(None)
        return TrainOutcome(Path(adapter) if adapter else None, None, run_dir, False)

    best_step = int(Path(state.best_model_checkpoint).name.split("-")[-1]) if state.best_model_checkpoint else state.global_step
    memory, memory_kind, reserved = peak_memory()
    dataset = json.loads((run_dir / "dataset" / "dataset.json").read_text())
    resolved = resolve(profile.model)
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": profile.model,
        "quantization": profile.quantization,
        "prompt_format": profile.prompt_format,
        "end_of_turn_token": tokenizer.eos_token,
        "profile": profile.to_dict(),
        "run": run_dir.name,
        "data": {
            "hash": dataset["data_hash"],
            "train_samples": dataset["train"],
            "eval_samples": dataset["eval"],
            "eval_samples_scored": len(eval_rows),
            "composition": dataset["composition"],
        },
        "training": {
            "steps": state.global_step,
            "best_step": best_step,
            "best_eval_loss": state.best_metric,
            "eval_loss_before": run["eval_loss_before"],
            "wall_time_s": round(run["seconds"], 1),
            "trained_tokens_per_s": round(result.counts.trained_per_second, 1),
            "tokens_per_s": round(result.counts.tokens_per_second, 1),
            "padding_fraction": round(result.counts.padding_fraction, 4),
            "peak_memory_gib": round(memory, 3),
            "peak_memory_kind": memory_kind,  # of the main process when several trained
            "peak_memory_reserved_gib": None if reserved is None else round(reserved, 3),  # GPU only
            "processes": distributed.world_size(),  # data parallel: each trained on its share of every batch
            "micro_batches": result.counts.micro_batches,  # over all processes
            "evals": [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in result.log_history if "eval_loss" in h],
            "train_losses": [{"step": h["step"], "loss": h["loss"]} for h in result.log_history if "loss" in h],
        },
        "libraries": library_versions(),
    }
    staged = adapter_registry.staging_dir(registry)
    adapter = None
    try:
        # The best checkpoint was loaded back at the end of training (load_best_model_at_end).
        trainer.model.peft_config["default"].base_model_name_or_path = (
            profile.model if resolved.kind == "hub" else str(resolved.folder))
        trainer.model.save_pretrained(staged)
        # The eval split travels with the adapter: the held-out set of a character without evals/ of its own.
        shutil.copy2(run_dir / "dataset" / "eval.jsonl", staged / EVAL_SPLIT)
        draw_training_curve(result.log_history, staged / "training_curve.png",
                            f"{profile.name}: {profile.model}", best_step, run["eval_loss_before"])
        adapter = adapter_registry.publish(staged, manifest, registry)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        distributed.share(str(adapter) if adapter else None)  # the other processes wait for this
    manifest["version"] = adapter.name
    if promote:  # a manual training means "serve this"; retrain promotes only through its gate
        from core.serving_pointer import promote as put_in_service
        from trainer.export.serving import prepare_for_serving

        put_in_service(adapter, registry, reason=f"trained with profile {profile.name}", prepare=prepare_for_serving)
    run.update(status="finished", adapter=str(adapter))
    write_run(run_dir, run)
    t = manifest["training"]
    print(f"adapter {adapter} (best step {best_step} of {state.global_step})\n"
          f"eval loss: {t['eval_loss_before']:.4f} before (base) -> {t['best_eval_loss']:.4f} after\n"
          f"{t['trained_tokens_per_s']:.0f} trained tok/s, {t['tokens_per_s']:.0f} tok/s, padding {100 * t['padding_fraction']:.1f}%, "
          f"wall {t['wall_time_s']:.0f}s, peak memory {t['peak_memory_gib']:.2f} GiB ({memory_kind}"
          + ("" if reserved is None else f"; {reserved:.2f} GiB reserved") + ")")
    return TrainOutcome(adapter, manifest, run_dir, False)
