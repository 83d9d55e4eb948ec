"""What a serving backend needs of a version before it is put in service.

llama-server loads a LoRA only as a GGUF, at start. The bot (backend: llama-server) never
converts anything itself (it does not import the trainer), so every promotion and rollback
exports the version's LoRA GGUF first, to where the bot looks (core.paths.exported_lora_gguf):
the bot never sees a version in service without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.paths import exported_lora_gguf

log = logging.getLogger(__name__)


def prepare_for_serving(adapter: Path, bot_config: Path | None = None) -> None:
    """Export `adapter`'s LoRA GGUF when the bot's backend is llama-server and it is not there yet."""
    from core.settings import load_settings

    if load_settings(bot_config).backend != "llama-server" or exported_lora_gguf(adapter.name) is not None:
        return
    from trainer.export.export import export

    log.info("exporting %s as a LoRA GGUF for llama-server before it is put in service", adapter.name)
    export(adapter, ["lora-gguf"])
