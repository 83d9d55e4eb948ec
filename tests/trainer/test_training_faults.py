"""Training commands under faults, run as a user runs them: `trainer train` takes the training
lock like every training command, and `--resume` after a kill in the middle of a checkpoint save
continues from the last checkpoint saved whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.paths import PROJECT_ROOT
from core.training_lock import training_lock
from tests.conftest import TEST_CACHE
from trainer.cli.train import EXIT_ALREADY_RUNNING


def test_trainer_train_takes_the_training_lock(tmp_path):
    env = {**os.environ, "INOSUKE_STATE_DIR": str(tmp_path / "state")}
    with training_lock(tmp_path / "state" / "training.lock"):  # a retrain (or another train) is running
        done = subprocess.run([sys.executable, "-m", "trainer", "train", "--profile", "smollm2-cpu",
                               "--set", f"data={tmp_path / 'not-there'}"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_ALREADY_RUNNING, done.stdout + done.stderr
    assert "a training is already running" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.training
def test_resume_after_a_kill_during_a_checkpoint_save(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "tiny.jsonl").write_text("".join(json.dumps({"instruction": f"Count to {n}!", "output": f"{n}! HAH!"}) + "\n"
                                            for n in range(12)))
    runs, registry = tmp_path / "runs", tmp_path / "adapters"
    env = {**os.environ, "INOSUKE_CACHE_DIR": str(TEST_CACHE), "INOSUKE_STATE_DIR": str(tmp_path / "state")}

    def trainer(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trainer", "train", *args, "--runs", str(runs), "--registry", str(registry)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)

    first = trainer("--profile", "smollm2-cpu", "--set", f"data={data}", "--set", "max_steps=3", "--set", "eval_every=1",
                    "--set", "eval_max_samples=1", "--set", "max_seq_len=384")
    assert first.returncode == 0, first.stdout + first.stderr
    [run_dir] = runs.iterdir()
    # As if killed while saving the step-3 checkpoint: no trainer state, half an optimizer.
    last = run_dir / "checkpoints" / "checkpoint-3"
    (last / "trainer_state.json").unlink()
    (last / "optimizer.pt").write_bytes((last / "optimizer.pt").read_bytes()[:100])
    run = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**run, "status": "interrupted"}))

    resumed = trainer("--resume", run_dir.name)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stdout + resumed.stderr
    assert "checkpoint-3 was not saved whole" in resumed.stderr
    assert (last / "trainer_state.json").is_file()  # step 3 trained again from checkpoint 2, and saved whole
    assert [p.name for p in sorted(registry.glob("v*"))] == ["v0001", "v0002"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_resume_skips_a_damaged_run_record_and_names_it_when_asked_for(tmp_path, capsys):
    from core.errors import UserError
    from trainer.profile import load_profile
    from trainer.train import find_resumable, resumed_run

    runs = tmp_path / "runs"
    healthy, truncated, no_profile = (runs / name for name in ("healthy", "truncated", "no_profile"))
    for run_dir in (healthy, truncated, no_profile):
        run_dir.mkdir(parents=True)
    (healthy / "run.json").write_text(json.dumps({"status": "interrupted", "profile": load_profile("smollm2-cpu").to_dict()}))
    os.utime(healthy / "run.json", (0, 0))
    os.utime(healthy, (0, 0))  # the oldest: the damaged runs are newer
    (truncated / "run.json").write_text('{"status": "interrupted"')
    (no_profile / "run.json").write_text('{"status": "interrupted"}')
    assert find_resumable(runs, "latest") == healthy
    out = capsys.readouterr().out
    assert f"skipped: {truncated / 'run.json'}: unreadable run record (JSONDecodeError)" in out
    assert f"skipped: {no_profile / 'run.json'}: expected a run record with a status and a profile" in out
    assert resumed_run("healthy", runs)[2].name == "smollm2-cpu"
    for name in ("truncated", "no_profile"):
        with pytest.raises(UserError, match=f"{runs / name / 'run.json'}: "):
            resumed_run(name, runs)
