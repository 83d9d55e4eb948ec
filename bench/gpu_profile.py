"""Run as (on a CUDA machine): python bench/gpu_profile.py [--out DIR] [--steps 8] [--tokenizer DIR]
       (the device check, with its wheels: tools/gpu_check.sh, prepared by `make gpu-kit`)
Dry run of the same code on CPU:  .venv/bin/python bench/gpu_profile.py --scale tiny

The production profile, qwen2.5-3b-6gb, on the Qwen2.5-3B architecture with random weights (the
machine that runs this cannot reach the model hub), measured the way a user meets it:
1. the model: trainer/model_configs/Qwen2.5-3B-Instruct.json, weights drawn with the config's
   initializer (seeded) and saved in bf16. The tokenizer is the embedded model's (ChatML, as
   Qwen's; 49,152 ids, all inside Qwen's 151,936-entry vocabulary, which the model keeps): Qwen's
   own needs the hub. A sample's token count differs a little from Qwen's; the rows are packed
   to the profile's 1,024 tokens all the same, and the loss still projects onto 151,936 entries.
2. `python -m trainer train --profile qwen2.5-3b-6gb --set model=FOLDER --set max_steps=2`, a
   whole run as a user starts it (eval before and after, checkpoint, publish): its peak GPU
   memory, allocated and reserved, against `trainer plan`'s estimate and the 5.5 GiB target.
3. the same profile's trainer in this process (trainer/qlora.py make_trainer, as train() builds
   it), `--steps` optimizer steps over the run's training split: tokens/s and trained
   (persona-reply) tokens/s from the end of the first step (compiling kernels and warming the
   allocator are left out) to the last, each step's end synchronised with the GPU, and the MFU.
4. bench/serving.py with the adapter of step 2, in NF4 through the bot's worker: one stream and
   eight channels, each against the raw model.generate ceiling of the same batch.
The figures are printed and written to OUT/gpu_profile.json; each step prints as it ends, so a
run cut short still tells what it reached.

MFU counts the model FLOPs a QLoRA step needs per token: 2 per weight of the decoder's linear
layers forward and 2 backward (the gradient of their input: the 4-bit base is frozen, so no
weight gradient), plus 4 per LM-head weight for each trained (scored) token. Attention's
score products (about 3% at 1,024 tokens), the LoRA matrices (0.5%), and the forward that
gradient checkpointing recomputes (hardware FLOPs, not model FLOPs) are left out, against the
card's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "qwen2.5-3b-6gb"
VRAM_TARGET_GIB = 5.5
# Dense bf16 tensor-core peaks (NVIDIA's data sheets, without sparsity), by device name.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0,
                    "L40S": 362.1, "L4": 121.0, "RTX 4090": 165.2, "RTX 3090": 71.0, "RTX 3060": 25.6}
# --scale tiny: the same architecture, narrow and two layers deep, for a dry run on CPU.
TINY = {"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 688, "num_attention_heads": 4,
        "num_key_value_heads": 2}


def say(line: str) -> None:
    print(line, flush=True)


def run_and_echo(command: list[str], env: dict | None = None) -> str:
    """Run `command`, echoing its output line by line as it comes (a run cut short by a time
    limit still leaves its progress in the log); its output, or SystemExit if it failed."""
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait():
        raise SystemExit(f"`{' '.join(command)}` failed with exit code {process.returncode}")
    return "".join(lines)


def build_random_model(folder: Path, tokenizer_dir: Path, scale: str, seed: int) -> dict:
    """A model folder of the Qwen2.5-3B architecture with seeded random bf16 weights and the
    given tokenizer; returns its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from core.model_resolver import release_device_memory
    from trainer.plan import CONFIGS_DIR

    values = json.loads((CONFIGS_DIR / "Qwen2.5-3B-Instruct.json").read_text())
    if scale == "tiny":
        values.update(TINY)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    # The special tokens are the tokenizer's: generation must stop at its end of turn.
    values.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    values.pop("torch_dtype", None)
    config = AutoConfig.for_model(**values)
    torch.manual_seed(seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # drawn where it is fast
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.update(bos_token_id=values["bos_token_id"], eos_token_id=values["eos_token_id"],
                                   pad_token_id=values["pad_token_id"])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    release_device_memory()
    return values


def linear_weights(config: dict) -> tuple[int, int]:
    """Weights of the decoder's linear layers, and of the LM head, from the config (counted as
    `trainer plan` counts them)."""
    from trainer.plan import Architecture

    arch = Architecture.from_config(config)
    return arch.layers * sum(i * o for i, o in arch.projections().values()), arch.vocab * arch.hidden


def peak_tflops(name: str, given: float | None) -> float | None:
    if given:
        return given
    for key, value in PEAK_BF16_TFLOPS.items():  # the longer names first: "H100 PCIe" before "H100"
        if key in name:
            return value
    return None


def train_whole_run(folder: Path, state: Path, cpu: bool) -> dict:
    """Step 2: `python -m trainer train` as a user runs it; the published manifest's figures."""
    from core.registry import versions

    settings = [f"model={folder}", "max_steps=2", "eval_every=2", "eval_max_samples=16"]
    if cpu:  # the dry run: bitsandbytes' paged 8-bit AdamW needs a GPU
        settings.append("optimizer=adamw_torch")
    command = [sys.executable, "-m", "trainer", "train", "--profile", PROFILE]
    for setting in settings:
        command += ["--set", setting]
    started = time.perf_counter()
    run_and_echo(command, {"INOSUKE_STATE_DIR": str(state)})
    wall = time.perf_counter() - started
    adapter = versions(state / "adapters")[-1]
    manifest = json.loads((adapter / "manifest.json").read_text())
    t = manifest["training"]
    return {"adapter": str(adapter), "command_wall_s": round(wall, 1), "steps": t["steps"],
            "peak_allocated_gib": t["peak_memory_gib"], "peak_reserved_gib": t["peak_memory_reserved_gib"],
            "peak_kind": t["peak_memory_kind"], "tokens_per_s_with_warmup": t["tokens_per_s"],
            "libraries": manifest["libraries"]}


def plan_estimate(folder: Path, config: dict, on_gpu: bool) -> float:
    """`trainer plan`'s estimate of the profile's peak, in GiB."""
    from trainer.plan import Architecture, estimate
    from trainer.profile import load_profile

    return estimate(load_profile(PROFILE, [f"model={folder}"]), Architecture.from_config(config), on_gpu).total / 2**30


def steady_training(folder: Path, train_rows: Path, steps: int, cpu: bool) -> dict:
    """Step 3: the profile's trainer in this process; tokens/s from the first step's end to the last."""
    import torch
    from transformers import TrainerCallback

    from core.files import read_jsonl
    from core.model_resolver import load_model, load_tokenizer
    from trainer.profile import load_profile
    from trainer.qlora import make_trainer, wait_for_the_device
    from trainer.train import peak_memory

    settings = [f"model={folder}", f"max_steps={steps}"] + (["optimizer=adamw_torch"] if cpu else [])
    profile = load_profile(PROFILE, settings)
    tokenizer = load_tokenizer(str(folder))
    rows = read_jsonl(train_rows)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    model = load_model(str(folder), profile.quantization)
    scratch = tempfile.mkdtemp(prefix="gpu-profile-")
    trainer = make_trainer(model, tokenizer, rows, rows[:2], profile, scratch)
    trainer.args.max_steps = steps
    trainer.args.eval_strategy = "no"
    trainer.args.save_strategy = "no"
    trainer.args.load_best_model_at_end = False
    marks: list[tuple[float, int, int]] = []  # (time, positions, trained) at each optimizer step's end

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            wait_for_the_device()
            counts = trainer.token_counts
            marks.append((time.perf_counter(), counts.positions - counts.padding, counts.trained))

    trainer.add_callback(StepClock())
    trainer.train()
    if len(marks) < 2:
        raise SystemExit(f"--steps {steps}: need at least 2 optimizer steps to time one after the first")
    (t0, p0, r0), (t1, p1, r1) = marks[0], marks[-1]
    result = {"steps_timed": len(marks) - 1, "seconds": round(t1 - t0, 2), "tokens_per_s": (p1 - p0) / (t1 - t0),
              "trained_tokens_per_s": (r1 - r0) / (t1 - t0)}
    if not cpu:
        result["peak_allocated_gib"], _, result["peak_reserved_gib"] = peak_memory()
    return result


def serving(adapter: str, channels: int, rounds: int) -> dict:
    """Step 4: bench/serving.py on the adapter; its printed figures, and its output."""
    command = [sys.executable, str(ROOT / "bench" / "serving.py"), "--adapter", adapter, "--channels", str(channels),
               "--rounds", str(rounds)]
    return {"channels": channels, "output": run_and_echo(command)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-profile-out-")))
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps timed in step 3 (16 rows of 1,024 tokens each)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer folder (default: the embedded model's, resolved as the bot does)")
    parser.add_argument("--scale", choices=("full", "tiny"), default="full", help="tiny: a narrow two-layer model, for CPU")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if its name is not known")
    parser.add_argument("--rounds", type=int, default=2, help="messages per channel in the serving step")
    parser.add_argument("--skip", action="append", default=[], choices=("steady", "serving"), help="leave a step out")
    args = parser.parse_args()
    from core.cli import quiet_libraries, quiet_warnings

    quiet_libraries()
    quiet_warnings()
    import torch

    cpu = not torch.cuda.is_available()
    if cpu and args.scale == "full":
        raise SystemExit("no CUDA device: the full-size profile is for a GPU (use --scale tiny for a dry run on CPU)")
    if args.tokenizer is None:
        from core.model_resolver import EMBEDDED_SPEC, resolve

        args.tokenizer = resolve(EMBEDDED_SPEC).folder
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if cpu else torch.cuda.get_device_name()
    report: dict = {"device": device, "scale": args.scale, "profile": PROFILE, "torch": torch.__version__,
                    "cuda": torch.version.cuda}
    if not cpu:
        report["device_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30

    def save() -> None:
        (args.out / "gpu_profile.json").write_text(json.dumps(report, indent=2))

    work = Path(tempfile.mkdtemp(prefix="gpu-profile-"))
    folder = work / "qwen2.5-3b-random"
    started = time.perf_counter()
    config = build_random_model(folder, args.tokenizer, args.scale, seed=0)
    lin, head = linear_weights(config)
    report["model"] = {"folder": str(folder), "decoder_linear_weights": lin, "lm_head_weights": head,
                       "build_s": round(time.perf_counter() - started, 1)}
    say(f"device: {device}; torch {torch.__version__} (CUDA {torch.version.cuda}); {PROFILE} on the Qwen2.5-3B "
        f"architecture{' (tiny)' if args.scale == 'tiny' else ''}, random weights: {lin / 1e6:,.0f}M decoder linear "
        f"weights, LM head {head / 1e6:,.0f}M, built in {report['model']['build_s']} s")
    save()

    state = work / "state"
    whole = report["whole_run"] = train_whole_run(folder, state, cpu)
    report["plan_estimate_gib"] = plan_estimate(folder, config, not cpu)
    reserved = whole["peak_reserved_gib"]
    say(f"[whole run] python -m trainer train --profile {PROFILE}: {whole['steps']} steps in {whole['command_wall_s']} s; "
        f"peak {whole['peak_allocated_gib']:.2f} GiB ({whole['peak_kind']})"
        + ("" if reserved is None else f", {reserved:.2f} GiB reserved")
        + f"; trainer plan estimated {report['plan_estimate_gib']:.2f} GiB"
        + ("" if cpu else f"; target <= {VRAM_TARGET_GIB} GiB: {'met' if max(reserved, whole['peak_allocated_gib']) <= VRAM_TARGET_GIB else 'NOT met'}"))
    save()

    if "steady" not in args.skip:
        runs = sorted((state / "runs").iterdir())
        steady = report["steady"] = steady_training(folder, runs[-1] / "dataset" / "train.jsonl", args.steps, cpu)
        peak = peak_tflops(device, args.peak_tflops)
        flops = 4 * lin * steady["tokens_per_s"] + 4 * head * steady["trained_tokens_per_s"]
        steady["model_tflops"] = flops / 1e12
        steady["mfu"] = flops / (peak * 1e12) if peak and not cpu else None
        steady["peak_tflops"] = peak
        say(f"[steady training] {steady['steps_timed']} steps after the first, {steady['seconds']} s: "
            f"{steady['tokens_per_s']:.0f} tok/s, {steady['trained_tokens_per_s']:.0f} trained tok/s, "
            f"{steady['model_tflops']:.1f} model TFLOP/s"
            + (f", MFU {100 * steady['mfu']:.1f}% of {peak} TFLOP/s bf16" if steady["mfu"] is not None else "")
            + ("" if cpu else f"; peak {steady['peak_allocated_gib']:.2f} GiB allocated, {steady['peak_reserved_gib']:.2f} reserved"))
        save()

    if "serving" not in args.skip:
        report["serving"] = [serving(whole["adapter"], channels, args.rounds) for channels in (1, 8)]
        save()
    say(f"figures in {args.out / 'gpu_profile.json'}")


if __name__ == "__main__":
    main()
