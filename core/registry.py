"""The adapter registry: versioned adapter folders (v0001, v0002, ...) under state/adapters/.

Each version is a PEFT folder plus manifest.json naming its base model, quantization and prompt
format, so that loading one needs nothing but its path. A version appears in one rename, fully
written (PEFT files, manifest, curve), or not at all: a training killed half way can never leave
a half-written adapter that looks like a version. Which version is served is the pointer's
business (core/serving_pointer.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.paths import state_dir

VERSION = re.compile(r"^v(\d{4,})\Z")  # \Z, not $: "v0002\n" is no version name
MANIFEST = "manifest.json"
EVAL_SPLIT = "eval_split.jsonl"  # the training data's eval split, published with the adapter: its held-out set
                                 # when its character has no held-out folder of its own


def registry_dir() -> Path:
    """Where the trainer publishes adapter versions: state/adapters/."""
    return state_dir() / "adapters"


def versions(registry: Path | None = None) -> list[Path]:
    """Published adapter versions, oldest first (folders still being written are not listed)."""
    registry = registry or registry_dir()
    if not registry.is_dir():
        return []
    found = [p for p in registry.iterdir() if p.is_dir() and VERSION.match(p.name) and (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: int(VERSION.match(p.name).group(1)))


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    version: str
    base_model: str
    quantization: str
    prompt_format: str


def read_adapter(path: str | Path) -> AdapterInfo:
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not (path / "adapter_config.json").is_file():
        raise UserError(f"{path}: not a PEFT adapter folder (no adapter_config.json)")
    if not manifest_path.is_file():
        raise UserError(f"{path}: no manifest.json: this adapter was not written by the trainer")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        info = AdapterInfo(path, manifest["version"], manifest["base_model"], manifest["quantization"], manifest["prompt_format"])
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest_path}: unreadable manifest ({exc})") from None
    # The version names folders (state/exports/<version>/): "../../x" or "/home/me" would write elsewhere.
    if not (isinstance(info.version, str) and VERSION.match(info.version)):
        raise UserError(f"{manifest_path}: version: expected a name such as v0003, got {info.version!r}")
    return info



def find_adapter(spec: str | Path, registry: Path | None = None) -> Path:
    """An adapter named as a folder path, a registry version (`v0003`), or `latest`."""
    registry = registry or registry_dir()
    text = str(spec)
    if text == "latest":
        found = versions(registry)
        if not found:
            raise UserError(f"{registry}: no adapter published yet (run: python -m trainer train --profile smollm2-cpu)")
        return found[-1]
    if VERSION.match(text) and not Path(text).exists():
        path = registry / text
        if not path.is_dir():
            raise UserError(f"{path}: no such adapter version (published: {', '.join(p.name for p in versions(registry)) or 'none'})")
        return path
    return Path(text)


def staging_dir(registry: Path | None = None) -> Path:
    """A private folder inside the registry to write a new version into before publishing it."""
    registry = registry or registry_dir()
    registry.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".incoming-", dir=registry))


def taken_numbers(registry: Path) -> list[int]:
    """Every version number in use, published or not: a `vNNNN` folder without a manifest
    (half copied by hand, or damaged) still holds its name."""
    if not registry.is_dir():
        return []
    return [int(m.group(1)) for p in registry.iterdir() if (m := VERSION.match(p.name))]


def publish(staged: Path, manifest: dict, registry: Path | None = None) -> Path:
    """Give the staged folder the next free version number, write its manifest, rename it into place."""
    registry = registry or registry_dir()
    while True:
        number = max(taken_numbers(registry), default=0) + 1
        target = registry / f"v{number:04d}"
        manifest = {**manifest, "version": target.name}
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(staged, target)  # fails if another run took this number meanwhile: try the next
            return target
        except OSError:
            if not target.exists():
                shutil.rmtree(staged, ignore_errors=True)
                raise
