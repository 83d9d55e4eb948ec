"""Which adapter is in service: `current.json` in the registry, replaced in one atomic rename.

The registry holds every published version (candidates included); the pointer alone says which
one the bot serves. Promotion and rollback only ever rewrite the pointer, so a candidate that
failed the gate, or a training killed half way, never changes what is served. Before any
pointer exists (a fresh install that only ran `trainer train`), the newest version is served.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from core.registry import VERSION, read_adapter, registry_dir, versions
from core.errors import UserError
from core.files import write_json

POINTER = "current.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # what PEFT saves
log = logging.getLogger(__name__)


def pointer_path(registry: Path | None = None) -> Path:
    return (registry or registry_dir()) / POINTER


FIX = "fix it or point it anew with `python -m trainer rollback --to vNNNN`"


def read_pointer(registry: Path | None = None) -> dict | None:
    """The pointer, checked: an object whose `version` is a registry name (vNNNN) or null and
    whose `history` lists registry names, so that it can never point outside the registry."""
    path = pointer_path(registry)
    if path.is_dir():  # `rollback --to` cannot write over a folder: it has to be moved aside by hand
        raise UserError(f"{path}: is a folder, not the pointer file; move it aside, then run "
                        "`python -m trainer rollback --to vNNNN`")
    try:
        pointer = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, RecursionError, OSError) as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__}); {FIX}") from None
    if not isinstance(pointer, dict):
        raise UserError(f"{path}: expected an object with a version, got {type(pointer).__name__}; {FIX}")
    version, history = pointer.get("version"), pointer.get("history", [])
    if version is not None and not (isinstance(version, str) and VERSION.match(version)):
        raise UserError(f"{path}: version: expected a name such as v0003 or null, got {version!r}; {FIX}")
    if not isinstance(history, list) or not all(isinstance(v, str) and VERSION.match(v) for v in history):
        raise UserError(f"{path}: history: expected a list of names such as v0003; {FIX}")
    return pointer


def in_service(registry: Path | None = None) -> Path | None:
    """The adapter folder the bot should serve, or None for the bare base model."""
    registry = registry or registry_dir()
    pointer = read_pointer(registry)
    if pointer is not None:
        return registry / pointer["version"] if pointer.get("version") else None
    published = versions(registry)
    return published[-1] if published else None


def checked_in_service(registry: Path | None = None) -> Path | None:
    """in_service, for what is about to compare against it (a retrain): a pointer naming a version
    that is not in the registry is an error now, not after a candidate has been trained."""
    registry = registry or registry_dir()
    current = in_service(registry)
    if current is not None and not (current / "manifest.json").is_file():
        raise UserError(f"{pointer_path(registry)}: points at {current.name}, which is not in {registry}; "
                        "point it anew with `python -m trainer rollback --to vNNNN`")
    return current


def check_adapter(folder: Path) -> None:
    """A version named by hand (`rollback --to`) must hold an adapter, not just a manifest (a
    folder copied half way): the bot would be pointed at something it cannot load."""
    read_adapter(folder)  # adapter_config.json, and a manifest naming a version
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise UserError(f"{folder}: no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")


def write_pointer(pointer: dict, registry: Path | None = None) -> None:
    registry = registry or registry_dir()
    registry.mkdir(parents=True, exist_ok=True)
    write_json(pointer_path(registry), pointer)  # readers see the old pointer or the new one, never half of one


def promote(adapter: Path, registry: Path | None = None, reason: str = "",
            prepare: Callable[[Path], None] | None = None) -> None:
    """Put `adapter` (a published version folder) in service; the one it replaces is kept for rollback.
    `prepare(adapter)` runs first (the trainer exports what the serving backend needs): a failure
    there leaves the pointer unmoved."""
    registry = registry or registry_dir()
    if not (adapter / "manifest.json").is_file() or adapter.parent.resolve() != registry.resolve():
        raise UserError(f"{adapter}: not a published version of {registry}")
    if prepare is not None:
        prepare(adapter)
    current = in_service(registry)
    old = read_pointer(registry) or {}
    history = list(old.get("history", []))
    if current is not None and current.name != adapter.name:
        history.append(current.name)
    write_pointer({"version": adapter.name, "history": history, "reason": reason,
                   "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}, registry)


def rollback(registry: Path | None = None, to: str | None = None,
             prepare: Callable[[Path], None] | None = None) -> tuple[str | None, str]:
    """Serve the previous adapter again (or version `to`). Returns (from, to). `prepare` as in promote."""
    registry = registry or registry_dir()
    if to is not None and not VERSION.match(to):
        raise UserError(f"--to {to}: expected a version name such as v0003 (published: "
                        f"{', '.join(p.name for p in versions(registry)) or 'none'})")
    try:
        current = in_service(registry)
        history = list((read_pointer(registry) or {}).get("history", []))
        damaged = False
    except UserError:
        # `--to` is the way out that read_pointer's error names: it must work with a damaged pointer.
        if to is None or pointer_path(registry).is_dir():
            raise
        current, history, damaged = None, [], True
    named = to is not None
    if to is None:
        if not history:
            raise UserError("nothing to roll back to: no earlier adapter was in service")
        to = history.pop()
    elif to in history:
        history.remove(to)
    target = registry / to
    if not (target / "manifest.json").is_file():
        raise UserError(f"{target}: no such published adapter")
    if named:
        check_adapter(target)
    if prepare is not None:
        prepare(target)
    if damaged:
        kept = keep_damaged_pointer(registry)
        log.warning("%s was unreadable: replaced by a pointer to %s (the old one is kept as %s)", pointer_path(registry), to, kept.name)
    was = "an unreadable pointer" if damaged else current.name if current else "none"
    write_pointer({"version": to, "history": history, "reason": f"rollback from {was}",
                   "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}, registry)
    return (current.name if current else None), to


def keep_damaged_pointer(registry: Path) -> Path:
    """A copy of an unreadable pointer, beside it, before it is replaced: its history may be
    worth reading by hand."""
    kept = pointer_path(registry).with_name(f"{POINTER}.unreadable")
    shutil.copyfile(pointer_path(registry), kept)
    return kept
