"""One training at a time: an exclusive flock on state/training.lock, held for the whole run.

The kernel drops the lock when the process ends, however it ends (Ctrl-C, kill -9, a crash),
so a killed training never leaves a stale lock behind. The bot looks at the same lock to know
that a training is running (and may release the GPU for it)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from core.errors import UserError
from core.paths import state_dir

_held_here = 0  # how deep this process is inside training_lock(): retrain holds it while train() runs


class TrainingRunning(UserError):
    """Another training holds the lock."""


def lock_path() -> Path:
    return state_dir() / "training.lock"


@contextmanager
def training_lock(path: Path | None = None):
    """Hold the lock for the block; re-entrant within a process (retrain -> train -> KTO)."""
    global _held_here
    if _held_here:
        _held_here += 1
        try:
            yield
        finally:
            _held_here -= 1
        return
    path = path or lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise TrainingRunning(f"a training is already running ({holder}); this one does not start") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        _held_here = 1
        try:
            yield
        finally:
            _held_here = 0
    finally:
        handle.close()  # closing releases the lock


def training_in_progress(path: Path | None = None) -> bool:
    path = path or lock_path()
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
