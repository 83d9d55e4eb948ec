"""The one fake language model, shared by the fixtures (tests/conftest.py), the processes the
tests start (tests/discord_front/bot_process.py) and the front-end capacity bench. Not a test module."""

from __future__ import annotations


class FakeLanguageModel:
    """Stands in for the language model where a test's assertions do not depend on its text: it
    answers every prompt of a batch with the same short reply and the end-of-turn token, through
    the real generate() and the real worker, in milliseconds.

    It is a causal language model in the form core/generate.py's step loop drives: a forward call
    with a KV cache. Its "keys" are the token ids themselves, so each row's next token follows
    from what that row holds (prompt and reply so far): the reply's next token, then end of turn.
    `fail_on`: a prompt containing this text makes every forward that carries it raise (a bad
    request in a batch)."""

    device = "cpu"

    def __init__(self, tokenizer, reply: str = "HAH! Lord Inosuke heard you!", fail_on: str | None = None):
        self.tokenizer, self.reply, self.fail_on = tokenizer, reply, fail_on
        self.reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        self.vocab = len(tokenizer)
        self.prompts: list[str] = []  # every prompt it began a reply to, in order (as far as it was prefilled)
        self.forwards = 0  # forward calls (a prefill or a decoding step each)
        self.rows_seen: list[int] = []  # batch size of every forward

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True,
                 logits_to_keep=1, **kwargs):
        import types

        import torch

        ids = input_ids.to(torch.float32)[:, None, :, None]  # [rows, one head, columns, one dim]
        keys, _ = past_key_values.update(ids, torch.ones_like(ids), 0)
        self.forwards += 1
        self.rows_seen.append(int(input_ids.shape[0]))
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e4)
        for row in range(input_ids.shape[0]):
            held = keys[row, 0, :, 0][attention_mask[row].bool()].to(torch.long).tolist()
            if self.fail_on and self.fail_on in self.tokenizer.decode(held):
                raise RuntimeError(f"the fake model cannot read {self.fail_on!r}")
            token = self._next(held)
            if token == self.reply_ids[0]:
                self.prompts.append(self.tokenizer.decode(held, skip_special_tokens=False))
            logits[row, 0, token] = 0.0
        return types.SimpleNamespace(logits=logits)

    def _next(self, held: list[int]) -> int:
        """The reply's next token after the longest part of it `held` already ends with."""
        for done in range(len(self.reply_ids), 0, -1):
            if held[-done:] == self.reply_ids[:done]:
                return self.reply_ids[done] if done < len(self.reply_ids) else self.tokenizer.eos_token_id
        return self.reply_ids[0]


def fake_served_model(tokenizer, version: str | None = "v0007", reply: str = "HAH! Lord Inosuke heard you!",
                      fail_on: str | None = None):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from core.served_model import ServedModel

    return ServedModel(FakeLanguageModel(tokenizer, reply, fail_on), tokenizer, version, "chat", "smollm2-135m", "nf4")
