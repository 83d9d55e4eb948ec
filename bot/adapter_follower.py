"""Hot swap: the running bot follows the adapter in service (bot/serving.py) without a restart.

Every few seconds it reads the pointer. When another version was promoted (or rolled back to),
the new adapter is put in between two batches: with the same base model, only the LoRA weights
are loaded into the model already in memory (seconds, no second copy of the base); with another
base, the new model is loaded beside the old one first and then installed. Requests keep
queueing meanwhile, and each reply is stored with the version that actually wrote it.

Optionally (serving.release_during_training) the model is unloaded while a training holds the
training lock, so one small GPU can do both; users get an in-character "training in the
mountains" until it is loaded again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.model_resolver import release_device_memory
from bot.runtime import Runtime
from bot.serving import in_service
from bot.training_lock import training_in_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingSettings:
    follow_registry: bool = True  # swap to a newly promoted adapter without a restart (off when an adapter is pinned)
    poll_s: float = 5.0  # how often the pointer and the training lock are checked
    release_during_training: bool = False  # unload the model while a training runs (one small GPU for both)


class AdapterFollower:
    def __init__(self, runtime: Runtime, settings: ServingSettings = ServingSettings(), registry: Path | None = None,
                 lock: Path | None = None):
        self.runtime, self.settings, self.registry, self.lock = runtime, settings, registry, lock
        self.released = False
        self._failed: str | None = None  # a version that would not load: not retried until the pointer moves
        self.swaps: list[tuple[str | None, str | None]] = []

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("adapter check failed; still serving %s", self.runtime.adapter_version)
            await asyncio.sleep(self.settings.poll_s)

    async def check(self) -> None:
        if self.settings.release_during_training:
            training = training_in_progress(self.lock)
            if training and not self.released:
                await self.release()
                return
            if self.released and not training:
                await self.load(in_service(self.registry))
                return
            if self.released:
                return
        target = in_service(self.registry)
        name = target.name if target else None
        if name != self.runtime.adapter_version and name != self._failed:
            await self.load(target)

    async def release(self) -> None:
        def unload():
            self.runtime.engine.model = None
            release_device_memory()

        await self.runtime.engine.between_batches(unload)
        self.released = True
        log.info("model released while a training runs")

    async def load(self, target: Path | None) -> None:
        from bot.adapters import load_adapted_model, read_adapter
        from bot.model_resolver import load_model, load_tokenizer

        runtime, engine = self.runtime, self.runtime.engine
        before = runtime.adapter_version
        try:
            info = read_adapter(target) if target is not None else None
            base = info.base_model if info else runtime.base_model
            same_base = engine.model is not None and base == runtime.base_model and info is not None and is_peft(engine.model)
            if same_base:
                await engine.between_batches(lambda: swap_lora(engine, info))
            else:
                tokenizer = await asyncio.to_thread(load_tokenizer, base)
                model = await asyncio.to_thread(load_adapted_model, info, runtime.quantization) if info else \
                    await asyncio.to_thread(load_model, base, runtime.quantization)
                await engine.between_batches(lambda: engine.install(model, tokenizer, info.version if info else None))
                runtime.pipeline.tokenizer, runtime.base_model = tokenizer, base
        except Exception:
            self._failed = target.name if target else None
            log.exception("could not load adapter %s; still serving %s", target, before or "the base model")
            return
        runtime.pipeline.prompt_format = info.prompt_format if info else "chat"
        self.released, self._failed = False, None
        self.swaps.append((before, runtime.adapter_version))
        log.info("now serving adapter %s (was %s)", runtime.adapter_version or "none", before or "none")


def swap_lora(engine, info) -> None:
    """On the worker, between batches: load the new LoRA weights into the model in memory,
    make them active, drop the old ones."""
    model, old = engine.model, engine.model.active_adapter
    model.load_adapter(str(info.path), adapter_name=info.version)
    model.set_adapter(info.version)
    if old != info.version and old in model.peft_config:
        model.delete_adapter(old)
    model.eval()
    engine.version = info.version


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)

