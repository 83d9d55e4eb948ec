"""Held-out eval loss: mean cross-entropy per trained token (the persona's replies, as in
training) over the held-out conversations, and its perplexity."""

from __future__ import annotations

import math

from core.prompt import PromptFormat
from trainer.encode import IGNORE, encode


def heldout_loss(model, tokenizer, samples: list[dict], prompt_format: PromptFormat) -> tuple[float, float, int]:
    """(loss, perplexity, tokens scored)."""
    import torch

    total, tokens = 0.0, 0
    with torch.inference_mode():
        for sample in samples:
            encoded = encode(tokenizer, sample, prompt_format)
            ids = torch.tensor([encoded["input_ids"]], device=model.device)
            labels = torch.tensor([encoded["labels"]], device=model.device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                       ignore_index=IGNORE, reduction="sum").item()
            tokens += int((target != IGNORE).sum())
    loss = total / max(tokens, 1)
    return loss, math.exp(min(loss, 50.0)), tokens
