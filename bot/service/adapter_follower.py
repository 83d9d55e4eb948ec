"""Hot swap: the running bot follows the adapter in service (core/serving_pointer.py) without a restart.

Every few seconds it reads the pointer. When another version was promoted (or rolled back to),
the new adapter is put in between two batches: with the same base model, only the LoRA weights
are loaded into the model already in memory (seconds, no second copy of the base); with another
base, the new model is loaded beside the old one first and then installed. Requests keep
queueing meanwhile, and each reply is stored with the version that actually wrote it.

With an engine (backend: openai) the new version is loaded into the engine under its name,
replies switch to it, and the old one is unloaded (bot/service/engine_client.py). With backend:
llama-server a new process starts with the version's LoRA GGUF, replies switch to it, and the old
process stops (bot/service/llama_server_engine.py).

Optionally (serving.release_during_training, local backend only) the model is unloaded while a training holds the
training lock, so one small GPU can do both; users get an in-character "training in the
mountains" until it is loaded again.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.service.engine_client import EngineUnavailable
from core.model_resolver import release_device_memory
from core.passing_thread import in_passing_thread
from core.registry import read_adapter
from core.served_model import ServedModel, can_swap_in_place, load_served, swap_adapter
from bot.service.runtime import Runtime
from core.settings import ServingSettings
from core.serving_pointer import in_service
from core.training_lock import training_in_progress

log = logging.getLogger(__name__)


class AdapterFollower:
    def __init__(self, runtime: Runtime, settings: ServingSettings = ServingSettings(), registry: Path | None = None,
                 lock: Path | None = None):
        self.runtime, self.settings, self.registry, self.lock = runtime, settings, registry, lock
        self.released = False
        self._failed: str | None = None  # a version that would not load: not retried until the pointer moves
        self._base: ServedModel | None = None  # what was served before a release: its base and quantization
        self.swaps: list[tuple[str | None, str | None]] = []

    @property
    def worker(self):
        return self.runtime.worker

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("adapter check failed; still serving %s", self.runtime.adapter_version)
            await asyncio.sleep(self.settings.poll_s)

    async def check(self) -> None:
        # With a remote engine the training lock never unloads anything: the model is not here.
        if self.settings.release_during_training and not self.worker.remote:
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
            self._base = self.worker.served
            self.worker.install(None)
            release_device_memory()

        await self.worker.between_batches(unload)
        self.released = True
        log.info("model released while a training runs")

    async def load(self, target: Path | None) -> None:
        """Serve `target` (None: the bare base model): LoRA weights swapped into the model in
        memory when the base is the same, else a new model loaded beside the old one first."""
        worker = self.worker
        current = worker.served or self._base
        before = self.runtime.adapter_version
        try:
            info = read_adapter(target) if target is not None else None
            if self.worker.remote:  # load into the engine, switch, unload the old one
                await worker.switch_adapter(info)
            elif can_swap_in_place(worker.served, info):
                await worker.between_batches(lambda: worker.install(swap_adapter(worker.served, info)))
            else:
                # on a passing thread, which ends after it: see core/passing_thread.py
                served = await in_passing_thread(load_served, info, base=current.base, quantization=current.quantization)
                await worker.between_batches(lambda: worker.install(served))
        except EngineUnavailable as exc:  # the engine's own account is the whole story: one line
            self._failed = target.name if target else None
            log.error("could not load adapter %s: %s; still serving %s", target, exc, before or "the base model")
            return
        except Exception:
            self._failed = target.name if target else None
            log.exception("could not load adapter %s; still serving %s", target, before or "the base model")
            return
        self.released, self._failed, self._base = False, None, None
        self.swaps.append((before, self.runtime.adapter_version))
        log.info("now serving adapter %s (was %s)", self.runtime.adapter_version or "none", before or "none")
