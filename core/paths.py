"""Where Inosuke keeps things on disk. Environment variables override the defaults."""

import os
from pathlib import Path

# Repository root: data/ and the default state folder live beside the packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_CARD = DATA_DIR / "persona_card.json"


def project_path(value: str | Path) -> Path:
    """A path from a config or profile: relative paths are relative to the project root, so
    commands work from any working directory."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def state_dir() -> Path:
    """Run-time state (database, built datasets, adapters): $INOSUKE_STATE_DIR, else state/ in the
    project folder, whatever the working directory (commands work from anywhere)."""
    return Path(os.environ.get("INOSUKE_STATE_DIR", PROJECT_ROOT / "state"))


def cache_dir() -> Path:
    """Derived files that can be rebuilt (the converted embedded model): $INOSUKE_CACHE_DIR,
    else $XDG_CACHE_HOME/inosuke, else ~/.cache/inosuke."""
    if "INOSUKE_CACHE_DIR" in os.environ:
        return Path(os.environ["INOSUKE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "inosuke"


def exports_dir() -> Path:
    """Where `trainer export` writes each version's files: <state>/exports/<version>/."""
    return state_dir() / "exports"


def exported_lora_gguf(version: str, exports: Path | None = None) -> Path | None:
    """The version's adapter as a llama.cpp LoRA GGUF (`trainer export --format lora-gguf` writes
    <exports>/<version>/<card>-<version>.lora.gguf), or None when it was not exported. The one place
    both the trainer's promotion and the bot's llama-server backend look for it."""
    folder = (exports or exports_dir()) / version
    found = sorted(folder.glob(f"*-{version}.lora.gguf")) if folder.is_dir() else []
    return found[0] if found else None
