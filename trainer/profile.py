"""Training profiles: one YAML file per recipe in trainer/profiles/, loaded through the one
config loader, with `key=value` overrides from the command line. A profile may start from
another (`extends: smollm2-cpu`) and state only what differs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from core.config import build, merged, read_yaml, with_overrides
from core.errors import UserError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    RANGES: ClassVar[dict] = {"alpha": (1, None)}  # r and dropout: see check()


@dataclass(frozen=True)
class Profile:
    model: str
    quantization: Literal["nf4", "none"] = "nf4"
    prompt_format: Literal["chat", "alpaca"] = "chat"
    max_seq_len: int = 1024
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_steps: int = -1
    epochs: float = 1.0
    batch_size: int = 1
    grad_accum: int = 1
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optimizer: str = "paged_adamw_8bit"
    gradient_checkpointing: bool = True
    packing: bool = True
    shared_card: bool = True
    eval_every: int = 50
    eval_max_samples: int | None = None
    eval_fraction: float = 0.05
    seed: int = 0
    memory_budget_gib: float = 6.0
    data: str = "data"
    card: str = "data/persona_card.json"
    name: str = ""

    # Values that parse but make no sense fail here, not deep inside a training run (a negative
    # eval_max_samples would be a slice that silently drops eval rows). More in check().
    RANGES: ClassVar[dict] = {"max_steps": (-1, None), "epochs": (0, None), "warmup_ratio": (0, 1), "weight_decay": (0, None),
                              "max_grad_norm": (0, None), "eval_max_samples": (1, None)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def known_profiles() -> str:
    return ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))


def profile_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = PROFILES_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise UserError(f"unknown profile {name_or_path!r} (known: {known_profiles()}; or give a path to a YAML file)")
    return candidate


def load_profile(name_or_path: str, overrides: list[str] = ()) -> Profile:
    path = profile_path(name_or_path)
    values = with_overrides(profile_values(path), overrides, "max_steps=20")
    values.setdefault("name", path.stem)
    profile = build(Profile, values, str(path))
    check(profile, str(path))
    return profile


def profile_values(path: Path, extended_by: tuple[Path, ...] = ()) -> dict:
    """A profile file's values. With `extends: NAME` (a profile name, or a YAML path relative to
    this file) they start from that profile's values, sections such as `lora:` merged key by key,
    so a variant of a recipe cannot drift from the recipe it varies."""
    values = read_yaml(path)
    if "extends" not in values:
        return values
    parent = values.pop("extends")
    if not isinstance(parent, str) or not parent.strip():
        raise UserError(f"{path}: extends: expected a profile name or a path to a YAML file, got {parent!r}")
    if Path(parent).suffix.lower() in (".yaml", ".yml"):
        parent_path = path.parent / parent  # an absolute path stays as it is
    else:
        parent_path = PROFILES_DIR / f"{parent}.yaml"
        if not parent_path.is_file():
            raise UserError(f"{path}: extends: unknown profile {parent!r} (known: {known_profiles()}; or a path to a YAML file)")
    chain = extended_by + (path.resolve(),)
    if parent_path.resolve() in chain:
        loop = " -> ".join(p.name for p in chain + (parent_path,))
        raise UserError(f"{path}: extends: {parent}: a loop ({loop})")
    inherited = profile_values(parent_path, chain)
    inherited.pop("name", None)  # a profile is named after its own file unless it says otherwise
    return merged(inherited, values)


def check(profile: Profile, where: str) -> None:
    """Values that parse but make no sense."""
    positive = {"max_seq_len": profile.max_seq_len, "batch_size": profile.batch_size, "grad_accum": profile.grad_accum,
                "eval_every": profile.eval_every, "lora.r": profile.lora.r}
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{where}: {key}: must be at least 1, got {value}")
    if not 0 < profile.eval_fraction < 1:
        raise UserError(f"{where}: eval_fraction: must be between 0 and 1, got {profile.eval_fraction}")
    if not 0 <= profile.lora.dropout < 1:
        raise UserError(f"{where}: lora.dropout: must be in [0, 1), got {profile.lora.dropout}")
    if profile.learning_rate <= 0:
        raise UserError(f"{where}: learning_rate: must be positive, got {profile.learning_rate}")
    if profile.max_steps == 0 or (profile.max_steps < 0 and profile.epochs <= 0):
        raise UserError(f"{where}: max_steps: set a positive max_steps, or max_steps: -1 with positive epochs")
    if profile.lora.target_modules == []:
        raise UserError(f"{where}: lora.target_modules: name at least one module, or all-linear")
