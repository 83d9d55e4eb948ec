"""The one fake language model, shared by the fixtures (tests/conftest.py), the processes the
tests start (tests/discord_front/bot_process.py) and the front-end capacity bench. Not a test module."""

from __future__ import annotations


class FakeLanguageModel:
    """Stands in for the language model where a test's assertions do not depend on its text: it
    answers every prompt of a batch with the same short reply and the end-of-turn token, through
    the real generate() and the real worker, in milliseconds."""

    device = "cpu"

    def __init__(self, tokenizer, reply: str = "HAH! Lord Inosuke heard you!"):
        self.tokenizer, self.reply = tokenizer, reply
        self.prompts: list[str] = []  # every prompt generated, in order

    def generate(self, input_ids, attention_mask=None, max_new_tokens=32, **kwargs):
        import torch

        self.prompts += self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
        answer = self.tokenizer(self.reply, add_special_tokens=False)["input_ids"][: max_new_tokens - 1]
        answer = torch.tensor(answer + [self.tokenizer.eos_token_id]).repeat(input_ids.shape[0], 1)
        return torch.cat([input_ids, answer], dim=1)


def fake_served_model(tokenizer, version: str | None = "v0007", reply: str = "HAH! Lord Inosuke heard you!"):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from core.served_model import ServedModel

    return ServedModel(FakeLanguageModel(tokenizer, reply), tokenizer, version, "chat", "smollm2-135m", "nf4")
