"""What a training run reports of itself on a GPU, without one: the GPU is a stand-in (torch.cuda's
functions patched), since the figures are the allocator's and the clock's, not the model's."""

from __future__ import annotations

import time

import torch

from trainer.plan import GIB
from trainer.qlora import CountsTokens


def test_a_gpu_run_records_what_torch_reserved_beside_what_it_allocated(monkeypatch):
    """The card must hold what the caching allocator reserved, not only what tensors occupied:
    the manifest keeps both."""
    from trainer.train import peak_memory

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 4 * GIB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 5 * GIB)
    assert peak_memory() == (4.0, "cuda_max_allocated", 5.0)


def test_a_training_step_is_timed_until_the_gpu_has_done_its_work(monkeypatch):
    """On a GPU the Trainer's step returns while its backward pass is still queued on the device;
    the tokens/s in the manifest must count that time (here a stand-in device takes 0.2 s to
    finish what was queued)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: time.sleep(0.2))

    class QueuesItsWork:
        def training_step(self, model, inputs, num_items_in_batch=None):
            return torch.tensor(1.0)  # returns at once, as a step whose kernels are only launched

    class Counted(CountsTokens, QueuesItsWork):
        pass

    trainer = Counted()
    ids = torch.ones((1, 8), dtype=torch.long)
    trainer.training_step(None, {"input_ids": ids, "labels": ids})
    assert trainer.token_counts.positions == 8 and trainer.token_counts.seconds >= 0.2
