"""The model worker: ONE thread owns the model and serves every channel.

Requests from all channels go into one queue; the worker takes the first, waits up to
`max_wait_s` for more (up to `max_batch`), and generates them together in one batch, so eight
channels talking at once cost little more than one. Generation runs off the event loop (torch
releases the GIL while it computes), so Discord heartbeats are never blocked. The queue is
bounded: when it is full, `generate` raises EngineBusy at once and the caller answers in
character instead of making the user wait forever.

The model can be changed while the bot runs (a promoted adapter, or released while a training
uses the GPU): such changes go through the same queue and run on the worker between two
batches, so no batch ever sees half a swap and no queued request is dropped. Every generation
carries the adapter version that produced it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.generate import Generation, generate

log = logging.getLogger(__name__)


class EngineBusy(Exception):
    """The request queue is full."""


class ModelReleased(Exception):
    """The model is unloaded for now (a training is using the device)."""


@dataclass
class _Request:
    prompt: str
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Control:
    """Work for the worker thread between batches (a model swap, a release)."""

    action: Callable[[], object]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class ReplyEngine:
    def __init__(self, model, tokenizer, *, max_batch: int = 8, max_wait_s: float = 0.05, max_queue: int = 32,
                 max_new_tokens: int = 160, version: str | None = None):
        self.model, self.tokenizer, self.version = model, tokenizer, version  # version: the adapter in the model, None for a bare base
        self._held: _Control | None = None
        self.max_batch, self.max_wait_s, self.max_queue, self.max_new_tokens = max_batch, max_wait_s, max_queue, max_new_tokens
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._waiting = 0  # queued or being generated
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="inosuke-model", daemon=True)
        self.batches: list[int] = []  # size of every batch generated, for /inosuke and the bench

    @property
    def queue_length(self) -> int:
        return self._waiting

    def start(self) -> ReplyEngine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    async def generate(self, prompt: str) -> Generation:
        with self._lock:
            if self._waiting >= self.max_queue:
                raise EngineBusy
            self._waiting += 1
        loop = asyncio.get_running_loop()
        request = _Request(prompt, loop.create_future(), loop)
        self._queue.put(request)
        return await request.future

    async def between_batches(self, action: Callable[[], object]):
        """Run `action` on the worker thread once the current batch is done; its result."""
        loop = asyncio.get_running_loop()
        control = _Control(action, loop.create_future(), loop)
        self._queue.put(control)
        return await control.future

    def install(self, model, tokenizer, version: str | None) -> None:
        """Serve another model from the next batch on (call through between_batches)."""
        self.model, self.tokenizer, self.version = model, tokenizer, version

    def _next_item(self):
        if self._held is not None:
            held, self._held = self._held, None
            return held
        return self._queue.get()

    def _next_batch(self) -> list[_Request] | _Control | None:
        first = self._next_item()
        if first is None or isinstance(first, _Control):
            return first
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                request = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # stop after this batch
                break
            if isinstance(request, _Control):
                self._held = request  # run it right after this batch
                break
            batch.append(request)
        return batch

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            if isinstance(batch, _Control):
                try:
                    outcome = batch.action()
                except Exception as exc:  # a failed swap leaves the old model serving
                    log.exception("model change failed; still serving %s", self.version or "the base model")
                    outcome = exc
                batch.loop.call_soon_threadsafe(_settle, batch.future, outcome)
                continue
            try:
                if self.model is None:
                    raise ModelReleased
                version = self.version
                results: list[Generation] | BaseException = [replace(g, adapter_version=version) for g in generate(
                    self.model, self.tokenizer, [r.prompt for r in batch], self.max_new_tokens)]
                self.batches.append(len(batch))
            except ModelReleased as exc:
                results = exc
            except Exception as exc:  # one bad batch must not kill the worker
                log.exception("generation failed for a batch of %d", len(batch))
                results = exc
            with self._lock:
                self._waiting -= len(batch)
            for index, request in enumerate(batch):
                outcome = results if isinstance(results, BaseException) else results[index]
                request.loop.call_soon_threadsafe(_settle, request.future, outcome)


def _settle(future: asyncio.Future, outcome) -> None:
    if future.cancelled():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
