"""Which adapter is in service: the pointer (promote, rollback, a corrupt pointer), the newest
version before any pointer exists, and the training lock between processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.errors import UserError
from core.serving_pointer import in_service, pointer_path, promote, read_pointer, rollback
from core.training_lock import TrainingRunning, training_in_progress, training_lock


def publish(registry, name):
    folder = registry / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "manifest.json").write_text(json.dumps({"version": name, "base_model": "smollm2-135m",
                                                      "quantization": "nf4", "prompt_format": "chat"}))
    return folder


def test_newest_serves_until_a_pointer_exists_then_only_the_pointer_counts(tmp_path):
    assert in_service(tmp_path) is None
    v1 = publish(tmp_path, "v0001")
    assert in_service(tmp_path) == v1
    promote(v1, tmp_path)
    publish(tmp_path, "v0002")  # a candidate that was published but not promoted
    assert in_service(tmp_path) == v1


def test_promote_and_rollback_walk_the_history(tmp_path):
    published = []
    for n in (1, 2, 3):  # each trained and promoted in turn
        published.append(publish(tmp_path, f"v000{n}"))
        promote(published[-1], tmp_path, reason="test")
    v1, v2, v3 = published
    assert read_pointer(tmp_path)["history"] == ["v0001", "v0002"]
    assert rollback(tmp_path) == ("v0003", "v0002") and in_service(tmp_path) == v2
    assert rollback(tmp_path) == ("v0002", "v0001") and in_service(tmp_path) == v1
    with pytest.raises(UserError, match="nothing to roll back to"):
        rollback(tmp_path)
    assert rollback(tmp_path, to="v0003") == ("v0001", "v0003")
    with pytest.raises(UserError, match="no such published adapter"):
        rollback(tmp_path, to="v0009")
    with pytest.raises(UserError, match="not a published version"):
        promote(tmp_path / "elsewhere", tmp_path)


def test_a_corrupt_pointer_is_a_clear_error(tmp_path):
    publish(tmp_path, "v0001")
    pointer_path(tmp_path).write_text("{not json")
    with pytest.raises(UserError, match="current.json: unreadable"):
        in_service(tmp_path)


def test_the_training_lock_is_exclusive_across_processes_and_dies_with_its_holder(tmp_path):
    lock = tmp_path / "training.lock"
    assert not training_in_progress(lock)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from core.training_lock import training_lock\n"
        f"with training_lock(Path({str(lock)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert training_in_progress(lock)
        with pytest.raises(TrainingRunning, match=f"pid {holder.pid}"):
            with training_lock(lock):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert not training_in_progress(lock)  # killed: the kernel let go of the lock
    with training_lock(lock):
        assert training_in_progress(lock)
