"""The adapter registry: versioned adapter folders (v0001, v0002, ...) under state/adapters/.

A version appears in one rename, fully written (PEFT files, manifest, curve), or not at all: a
training killed half way can never leave a half-written adapter that looks like a version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from bot.adapters import VERSION, registry_dir, versions

__all__ = ["VERSION", "publish", "registry_dir", "staging_dir", "versions"]


def staging_dir(registry: Path | None = None) -> Path:
    """A private folder inside the registry to write a new version into before publishing it."""
    registry = registry or registry_dir()
    registry.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".incoming-", dir=registry))


def publish(staged: Path, manifest: dict, registry: Path | None = None) -> Path:
    """Give the staged folder the next version number, write its manifest, rename it into place."""
    registry = registry or registry_dir()
    while True:
        existing = versions(registry)
        number = int(VERSION.match(existing[-1].name).group(1)) + 1 if existing else 1
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
