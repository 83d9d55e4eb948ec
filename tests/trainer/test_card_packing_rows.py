"""Shared-card packing without a model: what a packed row holds and what its mask lets each token
see (the equivalence with samples run alone is in test_card_packing.py, on the real model)."""

import pytest
import torch

from core.prompt import render_chat
from trainer.card_packing import CARD, CardPackedCollator, Piece, attention_mask, card_attention, layout, pack, pack_samples, split_card
from trainer.encode import IGNORE, encode


def test_one_card_per_row_and_positions_that_continue_from_it(persona_samples, tokenizer):
    samples = persona_samples(6, conversation=True)
    encoded = [encode(tokenizer, s, "chat") for s in samples]
    card = tokenizer(render_chat(tokenizer, samples[0]["messages"][:1]), add_special_tokens=False)["input_ids"]
    rows = pack_samples(tokenizer, samples, encoded, "chat", 256)
    assert len(card) > 100 and 2 <= len(rows) < len(samples)
    # The card once per row instead of once per sample.
    own = sum(len(e["input_ids"]) - len(card) for e in encoded)
    assert sum(row.length for row in rows) == len(rows) * len(card) + own
    seen = []
    for row in rows:
        columns = row.columns()
        assert len(columns["input_ids"]) <= 256 and columns["input_ids"][: len(card)] == card
        # The card once, then each sample without it.
        assert columns["input_ids"][len(card):] == [t for p in row.pieces for t in p.input_ids]
        assert all(p.input_ids[: len(card)] != card for p in row.pieces)
        for number, piece in enumerate(row.pieces, start=1):
            at = [i for i, s in enumerate(columns["segment_ids"]) if s == number]
            assert [columns["position_ids"][i] for i in at] == list(range(len(card), len(card) + piece.own_length))
            seen.append(list(card) + piece.input_ids)
    # Every sample is in exactly one row, whole, and its labels are its own.
    assert sorted(seen) == sorted(e["input_ids"] for e in encoded)
    trained = sum(sum(label != IGNORE for label in e["labels"]) for e in encoded)
    assert trained == sum(sum(label != IGNORE for label in row.columns()["labels"]) for row in rows)


def test_rows_fill_best_fit_and_never_overflow(tokenizer):
    card = tuple(range(10))
    pieces = [Piece(card, [1] * n, [IGNORE] * n) for n in (30, 25, 20, 15, 10, 5, 5)]
    rows = pack(pieces, 50)
    assert [r.length for r in rows] == [50, 50, 40]  # 10-token card + 30+10 | 25+15 | 20+5+5
    assert pack(pieces, 50)[0].pieces[0] is rows[0].pieces[0]  # deterministic: a resumed run sees the same rows


def test_a_sample_shares_only_a_card_it_really_starts_with(tokenizer):
    card = (5, 6, 7)
    shared = split_card(card, {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, IGNORE, 9]})
    assert shared.card == card and shared.input_ids == [8, 9] and shared.labels == [IGNORE, 9]
    other = split_card(card, {"input_ids": [5, 6, 1, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, IGNORE, 9]})
    assert other.card == () and other.input_ids == [5, 6, 1, 8, 9]
    # A trained token right after the card would, packed, be predicted from another sample: not shared.
    trained_first = split_card(card, {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, 8, 9]})
    assert trained_first.card == ()


def test_alpaca_samples_have_no_card_and_pack_block_diagonally(persona_samples, tokenizer):
    samples = persona_samples(3)
    encoded = [encode(tokenizer, s, "alpaca") for s in samples]
    rows = pack_samples(tokenizer, samples, encoded, "alpaca", 512)
    assert len(rows) == 1 and rows[0].card == () and len(rows[0].pieces) == 3
    columns = rows[0].columns()
    starts = [i for i, p in enumerate(columns["position_ids"]) if p == 0]
    assert len(starts) == 3 and all(columns["labels"][i] == IGNORE for i in starts)
    mask = attention_mask(torch.tensor(columns["segment_ids"]), torch.zeros(len(columns["segment_ids"]), dtype=torch.long))[0, 0]
    assert not mask[starts[1]:, : starts[1]].any()  # the second sample sees nothing of the first


def test_mask_lets_a_sample_see_the_card_and_itself_only():
    # card of 2 tokens, then sample 1 (2 tokens), sample 2 (2 tokens)
    segments = torch.tensor([CARD, CARD, 1, 1, 2, 2])
    mask = attention_mask(segments, torch.zeros(6, dtype=torch.long))[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],
        [1, 1, 0, 0, 1, 1],
    ]
    additive = attention_mask(segments, torch.zeros(6, dtype=torch.long), torch.float32)[0, 0]
    assert additive[4, 2] == torch.finfo(torch.float32).min and additive[4, 1] == 0  # for eager attention


def test_rows_of_a_micro_batch_see_only_their_own_card():
    rows = [{"input_ids": [1, 2, 3], "labels": [IGNORE, IGNORE, 3], "position_ids": [0, 1, 2], "segment_ids": [CARD, CARD, 1]},
            {"input_ids": [1, 2, 4], "labels": [IGNORE, IGNORE, 4], "position_ids": [0, 1, 2], "segment_ids": [CARD, CARD, 1]}]
    batch = CardPackedCollator()(rows)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 1, 2, 4]] and batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2]]
    mask = batch["attention_mask"][0, 0]
    assert mask.shape == (6, 6) and mask[5, 3:].tolist() == [True, True, True] and not mask[5, :3].any()


def test_layout_lists_each_span_with_the_card_it_sees():
    # Row 0: card of 2, samples of 2 and 1; row 1: no card (the Alpaca format), samples of 1 and 2.
    segments = torch.tensor([CARD, CARD, 1, 1, 2, 1, 2, 2])
    rows = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    assert layout(segments, rows) == ((0, 0, 0, 2), (0, 2, 2, 4), (0, 2, 4, 5), (5, 5, 5, 6), (5, 5, 6, 8))
    # Three rows: no card, then a card of 1 with single-token samples, then a card again.
    segments = torch.tensor([1, 1, CARD, 1, 2, CARD, CARD, 1])
    rows = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    assert layout(segments, rows) == ((0, 0, 0, 2), (2, 2, 2, 3), (2, 3, 3, 4), (2, 3, 4, 5), (5, 5, 5, 7), (5, 7, 7, 8))


def random_rows(seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    rows_columns = []
    for _ in range(2):
        card = int(torch.randint(0, 6, (1,), generator=generator))
        segments = [CARD] * card
        for number in range(1, int(torch.randint(1, 4, (1,), generator=generator)) + 1):
            segments += [number] * int(torch.randint(1, 7, (1,), generator=generator))
        rows_columns.append(segments)
    return rows_columns


ROW_CASES = {
    **{f"random-{seed}": random_rows(seed) for seed in range(4)},
    # Written out: a row without a card before one with a card, three rows, single-token spans.
    "no-card-then-card": [[1, 1, 2, 2, 2], [CARD, CARD, CARD, 1, 1, 2]],
    "three-rows": [[CARD, 1, 2, 3], [1, 1, 1], [CARD, CARD, 1, 1, 2]],
}


@pytest.mark.parametrize("case", ROW_CASES)
def test_card_attention_equals_the_masked_attention_and_its_gradient(case):
    """card_sdpa, span by span, against transformers' SDPA under the collator's 4D mask: same
    outputs and same gradients for queries, keys and values (float32 sums in another order), with
    grouped key/value heads, several rows, and rows without a card."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(len(case))
    rows_columns = ROW_CASES[case]
    segments = torch.tensor([s for row in rows_columns for s in row])
    rows = torch.tensor([n for n, row in enumerate(rows_columns) for _ in row])
    length, heads, kv_heads, dim = segments.shape[0], 6, 2, 8
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    tensors = [torch.randn(1, h, length, dim, generator=generator, requires_grad=True) for h in (heads, kv_heads, kv_heads)]

    def run(attention, **kwargs):
        out, _ = attention(module, *tensors, attention_mask(segments, rows), scaling=dim ** -0.5, **kwargs)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(99))
        grads = torch.autograd.grad((out * weights).sum(), tensors)
        return out, grads

    masked, masked_grads = run(sdpa_attention_forward)
    spans, span_grads = run(card_attention, card_layout=layout(segments, rows))
    torch.testing.assert_close(spans, masked, atol=1e-5, rtol=1e-5)
    for a, b in zip(span_grads, masked_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_card_attention_without_a_usable_layout_is_plain_sdpa():
    """No layout (generation), or one that does not tile the sequence: transformers' SDPA, as is."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(0)
    module = SimpleNamespace(num_key_value_groups=2, is_causal=True)
    query, key, value = (torch.randn(1, h, 5, 4, generator=generator) for h in (4, 2, 2))
    plain, _ = sdpa_attention_forward(module, query, key, value, None)
    for card_layout in (None, ((0, 0, 0, 3),), ((0, 0, 0, 3), (0, 0, 4, 5))):  # none, too short, a gap
        out, _ = card_attention(module, query, key, value, None, card_layout=card_layout)
        torch.testing.assert_close(out, plain)
    # The layout of two samples with no card: each sees only itself, unlike the causal fallback.
    spans, _ = card_attention(module, query, key, value, None, card_layout=((0, 0, 0, 2), (0, 0, 2, 5)))
    assert not torch.allclose(spans[:, 2:], plain[:, 2:])
