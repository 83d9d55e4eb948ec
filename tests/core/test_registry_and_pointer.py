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
    (folder / "adapter_model.safetensors").write_bytes(b"")  # never loaded here
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


@pytest.mark.parametrize("version", ["../../victim", "/home/me/project", 7, "v0001\n", None])
def test_a_manifest_version_that_is_no_version_name_is_refused(tmp_path, version):
    from core.registry import read_adapter

    folder = publish(tmp_path, "v0001")
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": version}))
    with pytest.raises(UserError) as error:
        read_adapter(folder)  # export names its folder after it: state/exports/<version>/
    assert str(error.value) == f"{manifest}: version: expected a name such as v0003, got {version!r}"


@pytest.mark.parametrize("damaged", [b"[]", b"\xff\xfe\x00binary", b'{"version": "v0001", "history": "v0001"}'])
def test_rollback_to_a_version_replaces_a_damaged_pointer_and_keeps_a_copy(tmp_path, damaged):
    publish(tmp_path, "v0001")
    pointer_path(tmp_path).write_bytes(damaged)
    with pytest.raises(UserError, match="fix it or point it anew with `python -m trainer rollback --to vNNNN`"):
        rollback(tmp_path)  # without --to there is no history to take the previous version from
    assert pointer_path(tmp_path).read_bytes() == damaged
    assert rollback(tmp_path, to="v0001") == (None, "v0001")  # the way out the error names works
    assert read_pointer(tmp_path)["version"] == "v0001" and in_service(tmp_path) == tmp_path / "v0001"
    assert (tmp_path / "current.json.unreadable").read_bytes() == damaged


def test_a_pointer_that_is_a_folder_is_left_alone_with_a_clear_error(tmp_path):
    publish(tmp_path, "v0001")
    pointer_path(tmp_path).mkdir()
    (pointer_path(tmp_path) / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="current.json: is a folder, not the pointer file; move it aside"):
        rollback(tmp_path, to="v0001")
    assert (pointer_path(tmp_path) / "notes.txt").read_text() == "mine"


def test_rollback_to_a_folder_without_an_adapter_is_refused_and_a_dangling_pointer_is_reported(tmp_path):
    promote(publish(tmp_path, "v0001"), tmp_path)
    half = publish(tmp_path, "v0002")
    for gone, says in (("adapter_model.safetensors", "v0002: no adapter weights (adapter_model.safetensors or adapter_model.bin)"),
                       ("adapter_config.json", "v0002: not a PEFT adapter folder (no adapter_config.json)")):
        (half / gone).unlink()  # copied half way: a manifest, but no adapter the bot could load
        with pytest.raises(UserError) as error:
            rollback(tmp_path, to="v0002")
        assert str(error.value) == f"{tmp_path / says}"
        assert read_pointer(tmp_path)["version"] == "v0001"
    from core.serving_pointer import checked_in_service

    pointer_path(tmp_path).write_text(json.dumps({"version": "v0009", "history": []}))
    with pytest.raises(UserError, match=r"current.json: points at v0009, which is not in "):
        checked_in_service(tmp_path)  # a retrain asks before it trains a candidate
    assert checked_in_service(tmp_path / "empty") is None
