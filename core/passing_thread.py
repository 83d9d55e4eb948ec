"""Torch work done beside the model worker (loading a model) runs on a thread that ends afterwards.

Why: torch's CPU kernels run on OpenMP (libgomp), which keeps a pool of helper threads for every
thread that ever ran a parallel region, until that thread exits. Once the process holds more of
them than there are cores, libgomp stops spin-waiting between regions: every helper sleeps and is
woken through a futex, region after region, and one decoding step is hundreds of small regions.
A model loaded on the main thread or on asyncio's executor (whose threads live on) left a pool
behind, and the worker's decoding steps then ran about 1.4x slower on 2 cores (bench/serving.py's
continuous scenario, all at once, 2026-12-06: 56.4 against 76.5 tok/s, two runs back to back).
A thread that exits releases its pool, so the worker's thread is again the only one holding
helpers.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def run_in_passing_thread(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """fn(*args, **kwargs) on a new thread that ends when it returns; blocks until then."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args, **kwargs)))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="inosuke-passing", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


async def in_passing_thread(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Like asyncio.to_thread, on a new thread that ends when fn returns (the event loop stays live)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(ok: bool, value) -> None:
        if future.done():  # the caller gave up (cancelled): nobody waits for the result
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, False, exc)
        else:
            loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(target=run, name="inosuke-passing", daemon=True).start()
    return await future
