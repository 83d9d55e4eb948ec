"""The one fake language model, shared by the fixtures (tests/conftest.py), the processes the
tests start (tests/discord_front/bot_process.py) and the front-end capacity bench. Not a test module."""

from __future__ import annotations


class FakeLanguageModel:
    """Stands in for the language model where a test's assertions do not depend on its text: it
    answers every prompt of a batch with the same short reply and the end-of-turn token, through
    the real generate() and the real worker, in milliseconds. `reply` may be a function of the
    prompt (e.g. `quoting` the user), and `delay_s` makes each batch take that long (a busy model)."""

    device = "cpu"

    def __init__(self, tokenizer, reply="HAH! Lord Inosuke heard you!", delay_s: float = 0.0):
        self.tokenizer, self.reply, self.delay_s = tokenizer, reply, delay_s
        self.prompts: list[str] = []  # every prompt generated, in order

    def generate(self, input_ids, attention_mask=None, max_new_tokens=32, **kwargs):
        import time

        import torch

        prompts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
        self.prompts += prompts
        if self.delay_s:
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


def fake_served_model(tokenizer, version: str | None = "v0007", reply="HAH! Lord Inosuke heard you!", delay_s: float = 0.0):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from core.served_model import ServedModel

    return ServedModel(FakeLanguageModel(tokenizer, reply, delay_s), tokenizer, version, "chat", "smollm2-135m", "nf4")
