"""Training on several processes: `accelerate launch` starts two CPU processes (gloo) of the
real `python -m trainer train` (through a script that runs it as `python -m trainer` does, then
reports the process group) on the embedded model; both train (data parallel), exactly one adapter
is published and put in service, by the main process, and both leave the process group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import PROJECT_ROOT
from core.registry import versions
from core.serving_pointer import in_service
from tools.local_postgres import free_port

STEPS = 2  # enough to show both processes stepping together; 4 took 57 s against 46 s alone


@pytest.mark.training
def test_two_processes_train_one_adapter_published_once(tmp_path, model_cache):
    state = tmp_path / "state"
    env = {**os.environ, "INOSUKE_STATE_DIR": str(state), "OMP_NUM_THREADS": "1"}
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    entry = Path(__file__).with_name("train_and_report_process_group.py")  # `python -m trainer`, then a report
    done = subprocess.run([*launch, str(entry), "train", "--profile", "smollm2-cpu", "--set", f"max_steps={STEPS}", "--set", "max_seq_len=512",
                           "--set", f"eval_every={STEPS}", "--set", "eval_max_samples=4"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=580)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]

    registry = state / "adapters"
    [adapter] = versions(registry)  # one version: the second process published nothing
    assert in_service(registry) == adapter and (adapter / "adapter_model.safetensors").is_file()
    assert len(list((state / "runs").iterdir())) == 1  # one run folder, shared by both processes
    training = json.loads((adapter / "manifest.json").read_text())["training"]
    # Both processes stepped: a micro-batch per step each (batch_size 1, grad_accum 1).
    assert (training["processes"], training["steps"], training["micro_batches"]) == (2, STEPS, 2 * STEPS)
    assert output.count("adapter ") == 1 and output.count("eval loss before training") == 1  # the main process reports
    # Both processes left the process group before exiting (else gloo may abort one at exit).
    assert output.count("process group open at exit: False") == 2, output[-3000:]


def test_retrain_refuses_to_run_on_several_processes(monkeypatch):
    from core.errors import UserError
    from trainer.retrain import RetrainSettings, retrain

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="trainer retrain runs in one process"):
        retrain(RetrainSettings())


def test_leaving_a_broken_process_group_never_hides_why_training_stopped(monkeypatch, caplog, capsys):
    """`trainer train` leaves the process group on its way out, a failed training's way included:
    a group that cannot be taken down is logged, and the user still gets the training's own answer
    (here: another training holds the lock, exit code 75 to try again later)."""
    import torch.distributed as dist

    import trainer.train
    from core.training_lock import TrainingRunning
    from trainer.__main__ import make_parser
    from trainer.cli.train import EXIT_ALREADY_RUNNING

    def busy(*args, **kwargs):
        raise TrainingRunning("a training is already running (pid 4242); try again when it ends")

    def broken():
        raise RuntimeError("connection reset by peer")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(trainer.train, "train", busy)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "destroy_process_group", broken)
    args = make_parser().parse_args(["train", "--profile", "smollm2-cpu"])
    assert args.func(args) == EXIT_ALREADY_RUNNING
    assert "already running" in capsys.readouterr().out
    assert "could not leave the process group: connection reset by peer" in caplog.text
