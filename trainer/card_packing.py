"""Shared-card packing: samples with the same persona card behind ONE copy of it.

Every chat sample starts with the same system message, the persona card (~160 tokens of
SmolLM2's ~260 a sample): packed the usual way, each sample recomputes it. Here a packed row is

    [card][sample 1 without the card][sample 2 without the card]...

with position ids that restart after the card for every sample (card 0..C-1, each sample C...),
and an attention mask under which a token sees the card and the earlier tokens of its own sample
only. Each sample therefore sees exactly the keys and values it sees alone (the card's do not
depend on what follows it), so its logits and loss are those of the sample run alone; only the
order of floating-point sums changes (tests/trainer/test_card_packing.py).

The mask goes to the model as a 4D tensor (batch, 1, query, key), which transformers 5 passes to
the attention function unchanged (masking_utils._preprocess_mask_arguments: "If the mask is
already 4D, simply return as-is"): boolean (True = attend) for SDPA, additive (0 / dtype min)
for eager attention. FlashAttention's varlen kernels take no arbitrary mask, so a model loaded
with one trains with TRL's packing instead (`supports`).

Samples whose card is not a token prefix (the seed's Alpaca format has no system message) form a
group with an empty card: that is ordinary padding-free packing with a block-diagonal mask.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.prompt import PromptFormat, render_chat
from trainer.encode import IGNORE

# Attention implementations that take a 4D mask as it is: exact shared-card packing.
MASKED_ATTENTION = ("sdpa", "eager")
CARD = 0  # segment id of the card's tokens in a row; samples are 1, 2, ...


@dataclass(frozen=True)
class Piece:
    """One encoded sample split into the card it shares and the tokens that are its own."""

    card: tuple[int, ...]
    input_ids: list[int]
    labels: list[int]

    @property
    def own_length(self) -> int:
        return len(self.input_ids)


def card_tokens(tokenizer, sample: dict, prompt_format: PromptFormat) -> tuple[int, ...]:
    """The tokens of the sample's system message rendered alone: the prefix it can share."""
    if prompt_format != "chat" or not sample.get("messages") or sample["messages"][0]["role"] != "system":
        return ()
    text = render_chat(tokenizer, sample["messages"][:1])
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_card(card: tuple[int, ...], encoded: dict[str, list[int]]) -> Piece:
    """Split off the card when the sample really starts with it, nothing in it is trained, and its
    first own token is not trained either (packed, that token follows another sample, not the card);
    otherwise the sample shares nothing."""
    ids, labels = encoded["input_ids"], encoded["labels"]
    n = len(card)
    shares = (0 < n < len(ids) and tuple(ids[:n]) == card and all(label == IGNORE for label in labels[: n + 1]))
    if not shares:
        # Alone, a sample's first token is predicted by nothing: never a label (as in TRL's packing).
        return Piece((), list(ids), [IGNORE, *labels[1:]])
    return Piece(card, list(ids[n:]), list(labels[n:]))


@dataclass
class Row:
    card: tuple[int, ...]
    pieces: list[Piece]

    @property
    def length(self) -> int:
        return len(self.card) + sum(p.own_length for p in self.pieces)

    def columns(self) -> dict[str, list[int]]:
        """input_ids, labels, position_ids and segment_ids (0 = card, then 1, 2, ... per sample)."""
        card = list(self.card)
        ids, labels, positions, segments = card[:], [IGNORE] * len(card), list(range(len(card))), [CARD] * len(card)
        for number, piece in enumerate(self.pieces, start=1):
            ids += piece.input_ids
            labels += piece.labels
            positions += range(len(card), len(card) + piece.own_length)
            segments += [number] * piece.own_length
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "segment_ids": segments}


def pack(pieces: list[Piece], max_length: int) -> list[Row]:
    """Best-fit decreasing per card: each piece goes in the fullest row of its card that still has
    room. Deterministic (ties keep the input order), so a resumed run sees the same rows."""
    groups: dict[tuple[int, ...], list[Piece]] = defaultdict(list)
    for piece in pieces:
        groups[piece.card].append(piece)
    rows: list[Row] = []
    for card, members in groups.items():
        open_rows: list[Row] = []
        for piece in sorted(members, key=lambda p: -p.own_length):
            if len(card) + piece.own_length > max_length:
                raise ValueError(f"a sample of {len(card) + piece.own_length} tokens does not fit a row of {max_length}")
            fitting = [r for r in open_rows if r.length + piece.own_length <= max_length]
            if fitting:
                max(fitting, key=lambda r: r.length).pieces.append(piece)
            else:
                open_rows.append(Row(card, [piece]))
        rows += open_rows
    return rows


def pack_samples(tokenizer, samples: list[dict], encoded: list[dict[str, list[int]]], prompt_format: PromptFormat,
                 max_length: int) -> list[Row]:
    cards: dict[str, tuple[int, ...]] = {}  # rendering the card once per distinct system message
    pieces = []
    for sample, enc in zip(samples, encoded):
        system = sample["messages"][0]["content"] if prompt_format == "chat" and sample.get("messages") else ""
        if system not in cards:
            cards[system] = card_tokens(tokenizer, sample, prompt_format)
        pieces.append(split_card(cards[system], enc))
    return pack(pieces, max_length)


def supports(model) -> bool:
    """Whether the model's attention takes our 4D mask as it is (SDPA, eager)."""
    return getattr(model.config, "_attn_implementation", None) in MASKED_ATTENTION


def attention_mask(segments, rows, dtype=None):
    """The (1, 1, L, L) mask of a flat sequence: query q sees key k when k is not after q, both
    are in the same row, and k is the row's card or in q's own sample. Boolean (True = attend), or
    additive in `dtype` for eager attention."""
    import torch

    q_segment, k_segment = segments[:, None], segments[None, :]
    length = segments.shape[0]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (rows[:, None] == rows[None, :]) & ((q_segment == k_segment) | (k_segment == CARD))
    allowed = allowed[None, None]
    if dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


@dataclass
class CardPackedCollator:
    """Collates packed rows padding-free: the micro-batch's rows are laid end to end in one
    sequence (no padding), each row's samples seeing only their own card."""

    additive_dtype: object = None  # a torch dtype for eager attention; None: a boolean mask (SDPA)

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        def flat(key):
            return torch.tensor([value for row in rows for value in row[key]])

        row_of = torch.tensor([n for n, row in enumerate(rows) for _ in row["input_ids"]])
        return {
            "input_ids": flat("input_ids")[None],
            "labels": flat("labels")[None],
            "position_ids": flat("position_ids")[None],
            "attention_mask": attention_mask(flat("segment_ids"), row_of, self.additive_dtype),
        }


def collator_for(model) -> CardPackedCollator:
    attn = model.config._attn_implementation
    return CardPackedCollator(additive_dtype=model.dtype if attn == "eager" else None)
