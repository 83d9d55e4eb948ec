"""Generation for a batch of prompts, stopping at the end-of-turn token."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.persona import PersonaCard
from core.transcript_labels import speaker_line


# Greedy decoding keeps replies deterministic, but small models fall into loops ("I'm a giant!
# I'm a giant! ..."); a mild penalty on repeated tokens ends them without changing what is said
# (measured on the demo adapter: every looping reply ended, "Paris" stayed right).
REPETITION_PENALTY = 1.15


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    ended: bool  # the model produced its end-of-turn token (rather than hitting the token limit)
    adapter_version: str | None = None  # set by the engine: the adapter that wrote it


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 128,
             repetition_penalty: float = REPETITION_PENALTY) -> list[Generation]:
    """Greedy continuations of every prompt, generated together in one left-padded batch."""
    import torch

    # Encode without padding, then pad in Python: a fast tokenizer keeps its padding setting in
    # shared state that every call changes, and the bot tokenizes context windows on other
    # threads while the worker encodes a batch: some batches came out unpadded and failed
    # (bench/frontend_capacity.py's load found it; tests/core/test_generate.py repeats it).
    encoded = tokenizer(prompts, add_special_tokens=False)
    # Left padding: generation continues at the right edge of every row.
    batch = tokenizer.pad(encoded, padding=True, padding_side="left", return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=repetition_penalty,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    results = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        ended = tokenizer.eos_token_id in row
        kept = row[: row.index(tokenizer.eos_token_id)] if ended else row
        results.append(Generation(tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept) + ended, ended))
    return results


def reply_text(raw: str, card: PersonaCard) -> str:
    """The persona's reply alone: its own leading `Inosuke:` label dropped, and everything from
    an invented next-speaker line (`You: ...`, `Zenitsu: ...`) on cut off."""
    lines = raw.strip().split("\n")
    first = speaker_line(lines[0]) if lines else None
    if first and first[0] in card.aliases:
        lines[0] = first[1]
    kept = []
    for line in lines:
        found = speaker_line(line)
        if kept and found and found[0] not in card.aliases:
            break
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
