"""Shared fixtures and the test tiers.

Tiers: a test that loads model weights is marked `model`, one that trains an adapter
`training` (marked explicitly, or automatically when it uses a fixture that does). `make
test-fast` runs the rest (`-m "not model and not training"`) with model loading forbidden, so
a fast test that loads weights by accident fails instead of slowing the tier down.

The embedded model is converted once into the project's own cache (.cache/), so a second run
skips it; the conversion itself is exercised from scratch by tests/core/test_model_resolver.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.paths import DEFAULT_CARD, PROJECT_ROOT
from core.persona import load_card

TEST_CACHE = PROJECT_ROOT / ".cache" / "tests"
FAST_TIER = os.environ.get("INOSUKE_TEST_TIER") == "fast"
# Fixtures that load weights (or train): a test using one belongs to that tier.
MODEL_FIXTURES = {"model", "served", "trained_adapter"}
TRAINING_FIXTURES = {"trained_adapter"}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        if used & TRAINING_FIXTURES:
            item.add_marker(pytest.mark.training)


@pytest.fixture(autouse=True)
def forbid_model_loads_in_the_fast_tier(monkeypatch):
    if FAST_TIER:
        from core import model_resolver

        def refuse(*args, **kwargs):
            raise AssertionError("this test loads model weights: mark it `model` (or use the fake_served fixture)")

        monkeypatch.setattr(model_resolver, "load_model", refuse)
    yield


@pytest.fixture(scope="session", autouse=True)
def model_cache():
    """The project's test cache (INOSUKE_CACHE_DIR) holding the converted embedded model."""
    patch = pytest.MonkeyPatch()
    patch.setenv("INOSUKE_CACHE_DIR", str(TEST_CACHE))
    yield TEST_CACHE
    patch.undo()


@pytest.fixture(scope="session")
def persona():
    return load_card(DEFAULT_CARD)


@pytest.fixture(scope="session")
def tokenizer(model_cache):
    from core.model_resolver import EMBEDDED_SPEC, load_tokenizer

    return load_tokenizer(EMBEDDED_SPEC)


@pytest.fixture(scope="session")
def model(model_cache):
    """The embedded model in NF4, as the bot serves it with no adapter (shared: never modify it)."""
    from core.model_resolver import EMBEDDED_SPEC, load_model

    return load_model(EMBEDDED_SPEC, "nf4")


@pytest.fixture(scope="session")
def served(model, tokenizer):
    """The bare embedded model as a ServedModel, with a version label so stored replies show it."""
    from core.served_model import ServedModel

    return ServedModel(model, tokenizer, "v0007", "chat", "smollm2-135m", "nf4")


class FakeLanguageModel:
    """Stands in for the language model where a test's assertions do not depend on its text: it
    answers every prompt of a batch with the same short reply and the end-of-turn token, through
    the real generate() and the real worker, in milliseconds. `reply` may be a function of the
    prompt (e.g. quoting the user), and `delay_s` makes each batch take that long (a busy model)."""

    device = "cpu"

    def __init__(self, tokenizer, reply="HAH! Lord Inosuke heard you!", delay_s: float = 0.0):
        self.tokenizer, self.reply, self.delay_s = tokenizer, reply, delay_s
        self.prompts: list[str] = []  # every prompt generated, in order

    def generate(self, input_ids, attention_mask=None, max_new_tokens=32, **kwargs):
        import time

        import torch

        prompts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
        self.prompts += prompts
        time.sleep(self.delay_s)
        answers = [self.tokenizer(self.reply(p) if callable(self.reply) else self.reply,
                                  add_special_tokens=False)["input_ids"][: max_new_tokens - 1] for p in prompts]
        width = max(map(len, answers)) + 1
        rows = [a + [self.tokenizer.eos_token_id] * (width - len(a)) for a in answers]
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


def quoting(prompt: str) -> str:
    """A reply that quotes the user's last message, as a model asked to repeat something does."""
    last = prompt.rsplit("<|im_start|>user\n", 1)[-1].split("<|im_end|>", 1)[0]
    return f"You said: {last.splitlines()[-1]}"


@pytest.fixture
def fake_served(tokenizer):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from core.served_model import ServedModel

    return ServedModel(FakeLanguageModel(tokenizer), tokenizer, "v0007", "chat", "smollm2-135m", "nf4")


@pytest.fixture
def fake_served_with(tokenizer):
    """fake_served_with(reply=..., delay_s=..., quote=True): a fake model that says something
    in particular, quotes the user, or takes its time."""
    from core.served_model import ServedModel

    def make(reply: str = "HAH! Lord Inosuke heard you!", delay_s: float = 0.0, quote: bool = False):
        model = FakeLanguageModel(tokenizer, quoting if quote else reply, delay_s)
        return ServedModel(model, tokenizer, "v0007", "chat", "smollm2-135m", "nf4")

    return make


@pytest.fixture
def db_url(tmp_path):
    """A fresh SQLite file migrated to head by Alembic."""
    from core.db.database import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)  # Alembic runs its own event loop: before the test's
    return url


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory, model_cache):
    """A real adapter from a short run of the smollm2-cpu profile (24 steps at a high learning
    rate, 3e-4): enough to learn the voice and to stop at end of turn. Shared by the trainer,
    evaluation and feedback-loop tests."""
    from trainer.train import train

    tmp = tmp_path_factory.mktemp("trained")
    return train("smollm2-cpu", overrides=["max_steps=24", "eval_every=24", "eval_max_samples=4", "batch_size=1",
                                           "learning_rate=3e-4"], runs=tmp / "runs", registry=tmp / "adapters")


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


@pytest.fixture
def small_card() -> dict:
    """A small SillyTavern V2 card (tests/assets/small_card.json) with both placeholder styles."""
    import json

    return json.loads((Path(__file__).parent / "assets" / "small_card.json").read_text())


@pytest.fixture
def write_png_card():
    """write_png_card(path, card, key="chara"): a PNG carrying `card` in a tEXt chunk, as SillyTavern saves it."""
    import base64
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    def write(path, card: dict, key: str = "chara") -> None:
        info = PngInfo()
        info.add_text(key, base64.b64encode(json.dumps(card).encode()).decode())
        Image.new("RGB", (4, 4), "orange").save(path, pnginfo=info)

    return write
