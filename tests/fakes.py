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
    `reply` may be a function of the prompt (e.g. `quoting` the user); `delay_s` makes every
    forward that begins a reply take that long (a busy model); `fail_on`: a prompt containing
    this text makes every forward that carries it raise (a bad request in a batch). `choices`:
    replies it samples from, evenly: their first tokens tie, so the request's seed (its own
    torch.Generator) decides which one it says, and a swipe with another seed another one."""

    device = "cpu"
    ASSISTANT_TURN = "<|im_start|>assistant\n"  # where a chat prompt ends and the reply begins

    def __init__(self, tokenizer, reply="HAH! Lord Inosuke heard you!", fail_on: str | None = None, delay_s: float = 0.0,
                 choices: list[str] | None = None):
        self.tokenizer, self.reply, self.fail_on, self.delay_s = tokenizer, reply, fail_on, delay_s
        self.choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices or []]
        assert len({ids[0] for ids in self.choice_ids}) == len(self.choice_ids), "choices must begin with distinct tokens"
        self.reply_ids = tokenizer(reply if isinstance(reply, str) else "", add_special_tokens=False)["input_ids"]
        self.turn_ids = tokenizer(self.ASSISTANT_TURN, add_special_tokens=False)["input_ids"]
        self.vocab = len(tokenizer)
        self.prompts: list[str] = []  # every prompt it began a reply to, in order (as far as it was prefilled)
        self.forwards = 0  # forward calls (a prefill or a decoding step each)
        self.rows_seen: list[int] = []  # batch size of every forward

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True,
                 logits_to_keep=1, **kwargs):
        import time
        import types

        import torch

        ids = input_ids.to(torch.float32)[:, None, :, None]  # [rows, one head, columns, one dim]
        keys, _ = past_key_values.update(ids, torch.ones_like(ids), 0)
        self.forwards += 1
        self.rows_seen.append(int(input_ids.shape[0]))
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e4)
        began = False
        for row in range(input_ids.shape[0]):
            held = keys[row, 0, :, 0][attention_mask[row].bool()].to(torch.long).tolist()
            if self.fail_on and self.fail_on in self.tokenizer.decode(held):
                raise RuntimeError(f"the fake model cannot read {self.fail_on!r}")
            if self.choice_ids:
                tokens, first = self._choose(held)
            else:
                token, first = self._next(held)
                tokens = [token]
            if first:
                began = True
                self.prompts.append(self.tokenizer.decode(held, skip_special_tokens=False))
            logits[row, 0, tokens] = 0.0
        if began and self.delay_s:
            time.sleep(self.delay_s)
        return types.SimpleNamespace(logits=logits)

    def _prompt_end(self, held: list[int]) -> int:
        width = len(self.turn_ids)
        ends = [i + width for i in range(len(held) - width, -1, -1) if held[i:i + width] == self.turn_ids]
        return ends[0] if ends else len(held)

    def _choose(self, held: list[int]) -> tuple[list[int], bool]:
        """With `choices`: every choice's first token (tied), then the rest of the one drawn."""
        said = held[self._prompt_end(held):]
        if not said:
            return [ids[0] for ids in self.choice_ids], True
        for ids in self.choice_ids:
            if ids[:len(said)] == said:
                return [ids[len(said)] if len(said) < len(ids) else self.tokenizer.eos_token_id], False
        return [self.tokenizer.eos_token_id], False

    def _next(self, held: list[int]) -> tuple[int, bool]:
        """The reply's next token for a row holding `held`, and whether it is the reply's first."""
        if callable(self.reply):  # the reply depends on the prompt: find where the prompt ends
            width = len(self.turn_ids)
            ends = [i + width for i in range(len(held) - width, -1, -1) if held[i:i + width] == self.turn_ids]
            prompt_end = ends[0] if ends else len(held)
            prompt = self.tokenizer.decode(held[:prompt_end], skip_special_tokens=False)
            reply_ids = self.tokenizer(self.reply(prompt), add_special_tokens=False)["input_ids"]
            done = len(held) - prompt_end
            return (reply_ids[done] if done < len(reply_ids) else self.tokenizer.eos_token_id), done == 0
        for done in range(len(self.reply_ids), 0, -1):  # the longest part of the reply `held` ends with
            if held[-done:] == self.reply_ids[:done]:
                return (self.reply_ids[done] if done < len(self.reply_ids) else self.tokenizer.eos_token_id), False
        return self.reply_ids[0], True


def quoting(prompt: str) -> str:
    """A reply that quotes the user's last message, as a model asked to repeat something does."""
    last = prompt.rsplit("<|im_start|>user\n", 1)[-1].split("<|im_end|>", 1)[0]
    return f"You said: {last.splitlines()[-1]}"


def fake_served_model(tokenizer, version: str | None = "v0007", reply="HAH! Lord Inosuke heard you!",
                      fail_on: str | None = None, delay_s: float = 0.0, choices: list[str] | None = None):
    """A ServedModel with the real tokenizer and prompt format and a FakeLanguageModel."""
    from core.served_model import ServedModel

    return ServedModel(FakeLanguageModel(tokenizer, reply, fail_on, delay_s, choices), tokenizer, version, "chat",
                       "smollm2-135m", "nf4")


# Replies a sampling fake chooses among (distinct first tokens): what it says depends on the seed.
SWIPE_CHOICES = [f"{word}! That's what Lord Inosuke says!" for word in
                 ("Boar", "Mountain", "Tempura", "Fight", "Sword", "Race", "Crush", "Forest",
                  "Acorn", "Thunder", "Water", "Beast", "Rock", "River", "Moon", "Sun")]
