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

Under that mask most query-key pairs are masked out, yet a dense attention computes them all: a
512-token row of the curated data (the card and 5.6 samples on average) needs about a third of
the pairs, a 1,024-token row (14 samples) about a sixth. So an SDPA model trains with
`card_sdpa` (`use_card_attention`): the collator also hands the model the row's layout
(`card_layout`: which keys each span of queries sees), and the attention runs span by span,
each sample's queries against the card's keys and its own. The
result is the masked attention's, computed over the pairs that count only; without a layout
(generation, a plain forward) `card_sdpa` is transformers' own SDPA, unchanged.

Samples whose card is not a token prefix (the seed's Alpaca format has no system message) form a
group with an empty card: that is ordinary padding-free packing with a block-diagonal mask.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.prompt import PromptFormat, render_chat
from trainer.encode import IGNORE

CARD_ATTENTION = "card_sdpa"  # SDPA over the spans of a card-packed row (card_attention); SDPA otherwise
# Attention implementations that take a 4D mask as it is: exact shared-card packing.
MASKED_ATTENTION = ("sdpa", "eager", CARD_ATTENTION)
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


def layout(segments, rows) -> tuple[tuple[int, int, int, int], ...]:
    """The spans of a flat sequence, in order, as (first visible key, end of the visible prefix,
    start, end): the queries in [start, end) see the keys in [first visible key, end of the
    prefix) (their row's card; empty for the card itself and for samples without a card) and,
    causally, their own span. Plain ints, not a tensor: the attention reads them in every layer,
    and a tensor moved to a GPU would cost a device sync each time."""
    import torch

    length = segments.shape[0]
    if length == 0:
        return ()
    boundary = torch.ones(length, dtype=torch.bool)
    boundary[1:] = (segments[1:] != segments[:-1]) | (rows[1:] != rows[:-1])
    starts = boundary.nonzero().flatten().tolist()
    ends = starts[1:] + [length]
    spans, card = [], (0, 0)
    for start, end in zip(starts, ends):
        if rows[start].item() != (rows[start - 1].item() if start else None):
            card = (start, start)  # a new row: no card seen yet
        if segments[start].item() == CARD:
            spans.append((start, start, start, end))
            card = (start, end)
        else:
            spans.append((*card, start, end))
    return tuple(spans)


def covers(card_layout, length: int) -> bool:
    """Whether the spans tile [0, length) in order, each seeing only keys before it."""
    position = 0
    for prefix_start, prefix_end, start, end in card_layout:
        if start != position or end <= start or not 0 <= prefix_start <= prefix_end <= start:
            return False
        position = end
    return position == length


def card_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                   card_layout=None, **kwargs):
    """Attention over a card-packed row, span by span (see the module's docstring): each span's
    queries against its visible prefix (all of it) and its own keys (causally). The same
    softmax over the same keys as the 4D mask gives; only the masked-out pairs are skipped.
    Without `card_layout`, transformers' SDPA with the mask, as for any model."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    # Anything the span path does not do goes to SDPA as it is: no layout (generation, a plain
    # forward), a batch of several sequences, a cache (queries fewer than keys), a layout that does
    # not tile the sequence, or options SDPA honours or refuses itself.
    unsupported = any(kwargs.get(option) is not None for option in ("softcap", "sliding_window", "s_aux", "position_bias"))
    if (card_layout is None or unsupported or query.shape[0] != 1 or query.shape[2] != key.shape[2]
            or not covers(card_layout, query.shape[2])):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    outputs = []
    for prefix_start, prefix_end, start, end in card_layout:
        visible, own = prefix_end - prefix_start, end - start
        q = query[:, :, start:end]
        if visible == 0:
            out = torch.nn.functional.scaled_dot_product_attention(
                q, key[:, :, start:end], value[:, :, start:end], dropout_p=dropout, scale=scaling, is_causal=True)
        else:
            k = torch.cat([key[:, :, prefix_start:prefix_end], key[:, :, start:end]], dim=2)
            v = torch.cat([value[:, :, prefix_start:prefix_end], value[:, :, start:end]], dim=2)
            mask = torch.ones(own, visible + own, dtype=torch.bool, device=query.device)
            mask[:, visible:] = torch.ones(own, own, dtype=torch.bool, device=query.device).tril()
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
        outputs.append(out)
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def use_card_attention(model) -> bool:
    """Switch an SDPA model to `card_sdpa` (registered once with transformers' attention and mask
    interfaces); other attentions are left as they are. Whether the model now uses it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if CARD_ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(CARD_ATTENTION, card_attention)
        AttentionMaskInterface.register(CARD_ATTENTION, sdpa_mask)
    if model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(CARD_ATTENTION)
    return model.config._attn_implementation == CARD_ATTENTION


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
        segments = flat("segment_ids")
        return {
            "input_ids": flat("input_ids")[None],
            "labels": flat("labels")[None],
            "position_ids": flat("position_ids")[None],
            "attention_mask": attention_mask(segments, row_of, self.additive_dtype),
            "card_layout": layout(segments, row_of),  # read by card_sdpa only; other attentions ignore it
        }


def collator_for(model) -> CardPackedCollator:
    attn = model.config._attn_implementation
    return CardPackedCollator(additive_dtype=model.dtype if attn == "eager" else None)
