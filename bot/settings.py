"""The bot's settings: config/bot.yaml (every key commented there) through the one config
loader; secrets come from the environment or .env only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bot.adapter_follower import ServingSettings
from bot.chat import ChatSettings
from bot.config import build, read_yaml
from bot.discord_bot import DiscordSettings
from bot.model_resolver import EMBEDDED_SPEC
from bot.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "bot.yaml"


@dataclass(frozen=True)
class EngineSettings:
    max_batch: int = 8
    max_wait_s: float = 0.05
    max_queue: int = 32
    max_new_tokens: int = 160


@dataclass(frozen=True)
class BotSettings:
    model: str = EMBEDDED_SPEC
    adapter: str | None = None
    quantization: Literal["nf4", "none"] = "nf4"
    card: str = "data/persona_card.json"
    engine: EngineSettings = field(default_factory=EngineSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)


def load_settings(path: Path | None = None) -> BotSettings:
    path = path or DEFAULT_CONFIG
    return build(BotSettings, read_yaml(path), str(path)) if path.exists() else BotSettings()


def discord_token() -> str | None:
    """DISCORD_TOKEN from the environment, or from a .env file in the working directory."""
    import os

    from dotenv import load_dotenv

    load_dotenv()
    return os.environ.get("DISCORD_TOKEN") or None
