"""Adapters from the trainer's registry: a PEFT folder plus manifest.json naming its base model,
quantization and prompt format, so that loading one needs nothing but its path."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import UserError
from bot.paths import state_dir

VERSION = re.compile(r"^v(\d{4,})$")


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
        manifest = json.loads(manifest_path.read_text())
        return AdapterInfo(path, manifest["version"], manifest["base_model"], manifest["quantization"], manifest["prompt_format"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest_path}: unreadable manifest ({exc})") from None


def load_adapted_model(info: AdapterInfo, quantization: str | None = None):
    """The adapter's base model (as it was trained: NF4 unless told otherwise) with the adapter on."""
    from peft import PeftModel

    from bot.model_resolver import load_model

    base = load_model(info.base_model, quantization or info.quantization)
    model = PeftModel.from_pretrained(base, str(info.path))
    model.eval()
    return model


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
