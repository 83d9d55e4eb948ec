"""Training on several processes: `accelerate launch` (or torchrun) starts one copy of
`python -m trainer train` per device, and TRL's trainer runs them with data parallelism (each
process trains on its share of every batch; gradients are averaged). This module says which
process this is and gives the few things only one process does (build the run folder, publish
the adapter) to the main one, sharing their results with the others.

One process (`python -m trainer train`) is the same code with a world of one: nothing here
changes it.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache


def world_size() -> int:
    """Processes in this training (WORLD_SIZE, set by accelerate launch / torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@lru_cache(maxsize=1)
def state():
    """Accelerate's process state: on CPU the gloo backend, on GPUs NCCL with one GPU per process.
    Created once, before the trainer (whose arguments build the same state on the same backend)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main() -> bool:
    return world_size() == 1 or state().is_main_process


def device() -> str | None:
    """Where this process loads the model: its own GPU when there are several processes on GPUs
    (None: the loader's default)."""
    if world_size() == 1:
        return None
    return str(state().device) if state().device.type == "cuda" else "cpu"


def share(value):
    """The main process's `value`, on every process (for paths the main process decided)."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def total(values: list[float], maximum: list[float] = ()) -> tuple[list[float], list[float]]:
    """`values` summed over every process and `maximum` as the largest on any process (token
    counts add up; wall time is the slowest process's)."""
    if world_size() == 1:
        return list(values), list(maximum)
    import torch
    import torch.distributed as dist

    device_ = state().device
    summed = torch.tensor(values, dtype=torch.float64, device=device_)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    largest = torch.tensor(list(maximum) or [0.0], dtype=torch.float64, device=device_)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return summed.tolist(), largest.tolist()[: len(maximum)]


def anyone(flag: bool) -> bool:
    """True on every process when it is True on any (a Ctrl-C seen by one process stops all of
    them after the same step; a process that stopped alone would leave the others waiting)."""
    if world_size() == 1:
        return flag
    return total([1.0 if flag else 0.0])[0][0] > 0


def finish() -> None:
    """Leave the process group once this process is done with it (`python -m trainer train` calls
    it on the way out; after it no collective works in this process). Without it gloo's worker
    threads outlive Python's teardown and a process can abort at exit ("terminate called without
    an active exception", SIGABRT) after its work is done, which the launcher reports as a failed
    training and answers by killing the other processes, the one still publishing included.
    Never raises: called on the way out of a failed training too, where the error that ended
    it is the one to report."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception as exc:  # a broken group: the interpreter's teardown gets it, as before
        logging.getLogger(__name__).warning("could not leave the process group: %s", exc)
