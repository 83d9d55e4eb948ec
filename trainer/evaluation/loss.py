"""Held-out eval loss: mean cross-entropy per trained token (the persona's replies, as in
training) over the held-out conversations, and its perplexity.

Computed as training computes it: the samples packed behind one copy of their persona card
(trainer/card_packing.py), which gives each sample the loss it has alone, and only the logits of
the positions that predict a trained token are projected (`logits_to_keep`). A model whose
attention takes no 4D mask scores the samples one at a time.
"""

from __future__ import annotations

import math

from core.prompt import PromptFormat
from trainer.card_packing import CardPackedCollator, Piece, Row, pack_samples, supports
from trainer.encode import IGNORE, encode

ROW_TOKENS = 1024  # tokens per packed row (a held-out sample longer than that gets a row of its own)


def heldout_loss(model, tokenizer, samples: list[dict], prompt_format: PromptFormat, packed: bool = True) -> tuple[float, float, int]:
    """(loss, perplexity, tokens scored)."""
    import torch

    encoded = [encode(tokenizer, sample, prompt_format) for sample in samples]
    shared = packed and supports(model)
    if shared:
        row_tokens = max([ROW_TOKENS, *(len(e["input_ids"]) for e in encoded)])
        rows = pack_samples(tokenizer, samples, encoded, prompt_format, row_tokens)
        collate = CardPackedCollator(additive_dtype=model.dtype if model.config._attn_implementation == "eager" else None)
    else:
        rows = [Row((), [Piece((), e["input_ids"], e["labels"])]) for e in encoded]
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for row in rows:
            columns = row.columns()
            if shared:
                batch = {key: value.to(model.device) if hasattr(value, "to") else value  # the layout is plain ints
                         for key, value in collate([columns]).items()}
            else:
                batch = {"input_ids": torch.tensor([columns["input_ids"]], device=model.device),
                         "labels": torch.tensor([columns["labels"]], device=model.device)}
            labels = batch.pop("labels")[0]
            predicts = (labels[1:] != IGNORE).nonzero().flatten()  # position t predicts the trained token t + 1
            if predicts.numel() == 0:
                continue
            logits = model(**batch, logits_to_keep=predicts).logits[0].float()
            total += torch.nn.functional.cross_entropy(logits, labels[predicts + 1], reduction="sum").item()
            tokens += predicts.numel()
    loss = total / max(tokens, 1)
    return loss, math.exp(min(loss, 50.0)), tokens
