"""How the next token is chosen: one value for the bot's config, the worker, evaluation and (later)
a request to a remote engine. Greedy when temperature is 0.

The field names and meanings are those of vLLM's sampling parameters and of the OpenAI-compatible
API (`temperature`, `top_p`, `min_p`, `repetition_penalty`, `seed`), so a Decoding can be sent
as it is to an engine that speaks that API. `repetition_scope` is ours: which tokens the penalty
counts (see below); those engines can only count the whole context. Locally, core/generate.py applies the same settings
with transformers' own logits processors, in the order `model.generate` applies them, so a
request decoded by the worker gives what `model.generate` gives for it alone.

Seeds are per request: each request samples from its own torch.Generator, so its reply depends on
its prompt and its seed only, never on what else is in the batch or in what order requests came.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

# Greedy decoding keeps replies deterministic, but small models fall into loops ("I'm a giant!
# I'm a giant! ..."); a mild penalty on repeated tokens ends them without changing what is said
# (measured on the demo adapter: every looping reply ended, "Paris" stayed right).
REPETITION_PENALTY = 1.15

# Which tokens the penalty counts. "context" (transformers', vLLM's and llama.cpp's way) counts the
# whole prompt too: the persona card's own words (his name, "boar", "strongest", "!") and the
# user's, so he is pushed away from echoing "Shoes?!" or naming Tanjiro. "reply" counts only the
# tokens of the reply being written, which is all that ending a loop needs. Measured on the demo
# adapter, held-out set, greedy: style 0.240 against 0.198, multi-turn 33% against 17%, QA 60%
# against 50%, no failures either way (README, "What the embedded model can reach").
RepetitionScope = Literal["reply", "context"]


@dataclass(frozen=True)
class Decoding:
    temperature: float = 0.0  # 0: greedy (always the likeliest token); above 0: sample, higher is wilder
    top_p: float = 1.0  # sample only among the likeliest tokens that hold this much probability (1: off)
    min_p: float = 0.0  # drop tokens less likely than min_p times the likeliest one (0: off)
    repetition_penalty: float = REPETITION_PENALTY  # > 1 makes tokens already counted (see scope) less likely (1: off)
    repetition_scope: RepetitionScope = "reply"  # reply: the reply's own tokens only; context: the prompt's too
    max_new_tokens: int = 160  # longest reply in tokens
    seed: int | None = None  # sampling only. None: a fresh random seed for every request (variety);
    #                          an int: each request's seed derives from it and the prompt (reproducible)

    def __post_init__(self):
        # ValueError "key: reason": the config loader reports it with the file's name and the section
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature: must be between 0 (greedy) and 5, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: must be above 0 and at most 1 (1: off), got {self.top_p}")
        if not 0.0 <= self.min_p < 1.0:
            raise ValueError(f"min_p: must be at least 0 (off) and below 1, got {self.min_p}")
        if not 0.5 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty: must be between 0.5 and 2 (1: off), got {self.repetition_penalty}")
        if self.repetition_scope not in ("reply", "context"):
            raise ValueError(f"repetition_scope: must be reply or context, got {self.repetition_scope!r}")
        if not 1 <= self.max_new_tokens <= 4096:
            raise ValueError(f"max_new_tokens: must be between 1 and 4096, got {self.max_new_tokens}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: must be null or an integer from 0 to 2**63-1, got {self.seed}")

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def seed_for(self, prompt: str) -> int | None:
        """The seed one request samples with (None when greedy: nothing is drawn)."""
        if not self.sampling:
            return None
        if self.seed is None:
            return secrets.randbits(63)
        digest = hashlib.sha256(f"{self.seed}\x00{prompt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    def penalty_ignores(self, prompt_len: int) -> int:
        """How many leading tokens of a row the repetition penalty leaves out: its prompt in the
        reply scope, none in the context scope."""
        return prompt_len if self.repetition_scope == "reply" else 0

    def logits_processors(self):
        """transformers' processors for these settings, in the order `model.generate` applies them
        (penalty first, then temperature, top-p, min-p). The penalty counts every id it is given:
        the batch decoder hands it only the ids penalty_ignores() leaves."""
        from transformers import (LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                  TemperatureLogitsWarper, TopPLogitsWarper)

        processors = LogitsProcessorList()
        if self.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(self.repetition_penalty))
        if self.sampling:
            if self.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(self.temperature))
            if self.top_p < 1.0:
                processors.append(TopPLogitsWarper(self.top_p))
            if self.min_p > 0.0:
                processors.append(MinPLogitsWarper(self.min_p))
        return processors

    def generate_kwargs(self, prompt_len: int) -> dict:
        """The same settings as `model.generate` arguments for a prompt of `prompt_len` tokens (the
        reference the tests compare with). The reply-scoped penalty goes in as a processor with
        `prompt_ignore_length`; generate puts given processors before its sampling warpers, the
        order above."""
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        ignored = self.penalty_ignores(prompt_len)
        kwargs = {"do_sample": self.sampling, "repetition_penalty": 1.0 if ignored else self.repetition_penalty}
        if ignored and self.repetition_penalty != 1.0:
            kwargs["logits_processor"] = LogitsProcessorList(
                [RepetitionPenaltyLogitsProcessor(self.repetition_penalty, prompt_ignore_length=ignored)])
        if self.sampling:
            kwargs |= {"temperature": self.temperature, "top_p": self.top_p, "top_k": 0,
                       "min_p": self.min_p if self.min_p > 0 else None}
        return kwargs


GREEDY = Decoding()
