"""Shared-card packing on the real model, through the trainer that trains with it: each packed
sample has the logits, the loss and the gradient it has run alone (the card and itself in one
sequence, plain causal attention), in NF4 and full precision, with and without gradient
checkpointing; and no sample sees another.

Tolerance: the packed and the lone forward compute the same sums over different matrix shapes
(a 500-token row against a 200-token sample, a masked attention against a causal one), so only
the order of float32 additions differs. Over 30 layers that leaves differences of about 1e-4 on
logits of magnitude up to ~40 (measured: 1e-4 at most, full precision and NF4 alike, since NF4
weights are dequantized to float32 for the matmul); the tests allow 1e-3 absolute on logits
and 1e-4 relative on losses. A gradient is summed over every token of the row, so its smallest
entries carry the sum of those differences: gradients are compared by the relative error of each
adapter tensor as a whole (at most 1e-3; measured 9e-5). A sample seeing one token of another shifts its
logits by more than 0.1 (the negative control below).
"""

import pytest
import torch

from core.model_resolver import EMBEDDED_SPEC, load_model
from trainer.card_packing import Row, pack_samples
from trainer.encode import IGNORE, encode
from trainer.profile import load_profile
from trainer.qlora import make_trainer

pytestmark = pytest.mark.model

LOGITS = {"atol": 1e-3, "rtol": 1e-4}
LOSS = {"atol": 1e-6, "rtol": 1e-4}
GRADIENT_RELATIVE_ERROR = 1e-3  # |packed - alone| / |alone| per adapter tensor (measured: 9e-5 at most)


def perturb_adapter(model) -> None:
    """Fresh LoRA B matrices are zero, so the adapter would not touch the forward: give them values."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)


@pytest.fixture(scope="module", params=[("nf4", False), ("nf4", True), ("none", False), ("none", True)],
                ids=["nf4", "nf4-checkpointing", "full", "full-checkpointing"])
def case(request, persona_samples, tokenizer, tmp_path_factory, model_cache):
    quantization, checkpointing = request.param
    profile = load_profile("smollm2-cpu", [f"quantization={quantization}", f"gradient_checkpointing={str(checkpointing).lower()}",
                                           "lora.dropout=0", "batch_size=1", "max_seq_len=512"])
    samples = persona_samples(4, conversation=True)
    trainer = make_trainer(load_model(EMBEDDED_SPEC, quantization), tokenizer, samples, samples[:2], profile,
                           str(tmp_path_factory.mktemp("card")))
    model = trainer.model
    if checkpointing:  # as Trainer.train() turns it on
        model.activation_checkpointing_enable()
    model.train()
    assert model.is_activation_checkpointing == checkpointing
    assert model.config._attn_implementation == "card_sdpa"  # the training path: attention span by span
    perturb_adapter(model)
    return trainer, samples


def alone(model, row: Row, number: int):
    """Logits of sample `number` of the row run alone (card + sample, plain causal attention), at its own tokens."""
    piece = row.pieces[number - 1]
    ids = torch.tensor([list(row.card) + piece.input_ids])
    return model(input_ids=ids).logits[0, len(row.card):], torch.tensor(piece.labels)


def packed(trainer, row: Row):
    """Logits of the whole packed row, through the trainer's own collator, and the row's columns."""
    batch = trainer.data_collator([row.columns()])
    batch.pop("labels")
    return trainer.model(**batch).logits[0], row.columns()


def own(logits, columns, number):
    at = torch.tensor([i for i, s in enumerate(columns["segment_ids"]) if s == number])
    return logits[at]


def sample_loss(logits, labels):
    """Summed cross-entropy of the sample's trained tokens; the logits at t predict token t + 1."""
    return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="sum")


def lora_gradients(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def test_each_packed_sample_has_its_lone_logits_loss_and_gradient(case, tokenizer):
    trainer, samples = case
    model = trainer.model
    rows = pack_samples(tokenizer, samples, [encode(tokenizer, s, "chat") for s in samples], "chat", 512)
    assert len(rows) == 1 and len(rows[0].pieces) == len(samples)  # one card, five samples behind it
    row = rows[0]

    # The training loss as the trainer computes it (TRL's fused LM head) and its gradient.
    model.zero_grad()
    batch = trainer.data_collator([row.columns()])
    assert batch["attention_mask"].dim() == 4 and (batch["labels"] != IGNORE).sum() > 40
    training_loss = trainer.compute_loss(model, batch)
    training_loss.backward()
    packed_gradients = lora_gradients(model)

    # Each sample alone, with plain logits.
    model.zero_grad()
    with torch.no_grad():
        packed_logits, columns = packed(trainer, row)
    total, tokens = 0.0, 0
    for number in range(1, len(row.pieces) + 1):
        lone_logits, labels = alone(model, row, number)
        mine = own(packed_logits, columns, number)
        trained = labels != IGNORE
        assert trained.sum() >= 3
        # Reply-token logits (the positions whose next token is trained) and the sample's loss.
        predicts = trained[1:].nonzero().flatten()
        torch.testing.assert_close(mine[predicts], lone_logits[predicts].detach(), **LOGITS)
        torch.testing.assert_close(sample_loss(mine, labels), sample_loss(lone_logits, labels).detach(), **LOSS)
        loss = sample_loss(lone_logits, labels)
        total = total + loss
        tokens += int(trained[1:].sum())
    lone_mean = total / tokens
    torch.testing.assert_close(training_loss.detach(), lone_mean.detach(), **LOSS)
    lone_mean.backward()
    lone_gradients = lora_gradients(model)
    assert packed_gradients.keys() == lone_gradients.keys() and len(packed_gradients) > 100
    for name in packed_gradients:
        error = (packed_gradients[name] - lone_gradients[name]).norm() / lone_gradients[name].norm()
        assert error < GRADIENT_RELATIVE_ERROR, name
    model.zero_grad()


def test_training_and_its_evals_attend_span_by_span(case, tokenizer, monkeypatch):
    """The trainer's loss, its backward (checkpointing recomputes included) and its eval loop all
    reach card_sdpa's span path with the row's layout: transformers' dense SDPA, card_sdpa's
    fallback, never runs. Were the layout lost on the way, every number would stay the same
    (the fallback is exact too), only slower: this is the test that notices."""
    import transformers.integrations.sdpa_attention as sdpa

    trainer, samples = case
    real, dense = sdpa.sdpa_attention_forward, []

    def spy(module, query, *args, **kwargs):
        dense.append(tuple(query.shape))
        return real(module, query, *args, **kwargs)

    monkeypatch.setattr(sdpa, "sdpa_attention_forward", spy)
    rows = pack_samples(tokenizer, samples, [encode(tokenizer, s, "chat") for s in samples], "chat", 512)
    trainer.model.zero_grad()
    trainer.compute_loss(trainer.model, trainer.data_collator([rows[0].columns()])).backward()
    trainer.model.zero_grad()
    assert trainer.evaluate()["eval_loss"] > 0
    assert dense == []
    trainer.model.train()


def test_no_sample_attends_to_another(case, tokenizer, persona_samples):
    trainer, samples = case
    if trainer.model.is_activation_checkpointing:
        pytest.skip("the forward is the same with checkpointing")
    encoded = [encode(tokenizer, s, "chat") for s in samples]
    row = pack_samples(tokenizer, samples, encoded, "chat", 512)[0]
    first = row.pieces[0]
    # Sample A (the first in the row) says something else, of another length; sample B follows it.
    other = encode(tokenizer, {**samples[0], "messages": [*samples[0]["messages"][:-1],
                                                          {"role": "assistant", "content": "Nope. Lord Inosuke sleeps now, go away."}]}, "chat")
    changed_first = pack_samples(tokenizer, [samples[0]], [other], "chat", 512)[0].pieces[0]
    assert changed_first.input_ids != first.input_ids
    changed = Row(row.card, [changed_first, *row.pieces[1:]])
    with torch.no_grad():
        logits, columns = packed(trainer, row)
        changed_logits, changed_columns = packed(trainer, changed)
        for number in range(2, len(row.pieces) + 1):
            torch.testing.assert_close(own(changed_logits, changed_columns, number), own(logits, columns, number), **LOGITS)

        # Negative control: under plain causal attention over the same row, B sees A, and A's change shows.
        def causal(r):
            batch = trainer.data_collator([r.columns()])
            batch["attention_mask"] = torch.ones_like(batch["attention_mask"]).tril()
            batch.pop("card_layout")  # card_sdpa would otherwise still attend span by span
            batch.pop("labels")
            return trainer.model(**batch).logits[0], r.columns()

        leaky, _ = causal(row)
        leaky_changed, _ = causal(changed)
        shift = (own(leaky_changed, changed_columns, 2) - own(leaky, columns, 2)).abs().max()
        assert shift > 0.1


def test_training_loss_never_builds_the_logits_and_equals_plain_cross_entropy(case, tokenizer):
    """The trainer's loss goes through TRL's fused LM head (vocabulary projection and cross-entropy
    in tiles, recomputed in the backward): it never runs the LM head over the row, it projects only
    the trained positions (the replies: about a third of a row), on CPU too, and its loss and
    gradient are those of plain cross-entropy over the full logits (float32 sums in another order:
    1e-5 relative on the loss; per adapter gradient, a relative error measured at most 1e-4 on an
    AVX-512 CPU and 2.0e-4 on an AVX2 one, checked against 5e-4: one trained token of the ~170
    left out would be 6e-3)."""
    import trl.trainer.utils as trl_utils

    trainer, samples = case
    model = trainer.model
    rows = pack_samples(tokenizer, samples, [encode(tokenizer, s, "chat") for s in samples], "chat", 512)
    batch = trainer.data_collator([rows[0].columns()])
    projections = []
    hook = model.get_output_embeddings().register_forward_hook(lambda module, args, output: projections.append(output.shape))
    tiled = trl_utils._ChunkedLogProbFunction
    scored = []

    class CountingTiles(tiled):
        @staticmethod
        def apply(hidden, *args):
            scored.append(hidden.shape[0])
            return tiled.apply(hidden, *args)

    trl_utils._ChunkedLogProbFunction = CountingTiles
    try:
        model.zero_grad()
        fused = trainer.compute_loss(model, dict(batch))
        fused.backward()
        assert projections == []  # no (tokens x vocabulary) logits were built
        trained = int((batch["labels"][0, 1:] != IGNORE).sum())
        assert scored == [trained] and trained < batch["labels"].numel() / 2, (scored, trained, batch["labels"].numel())
        fused_gradients = lora_gradients(model)

        model.zero_grad()
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits[0]
        assert projections == [torch.Size([1, *logits.shape])]  # the plain forward does build them
        labels = batch["labels"][0]
        plain = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE)
        plain.backward()
    finally:
        hook.remove()
        trl_utils._ChunkedLogProbFunction = tiled
    torch.testing.assert_close(fused.detach(), plain.detach(), atol=1e-6, rtol=1e-5)
    plain_gradients = lora_gradients(model)
    errors = {name: float((fused_gradients[name] - plain_gradients[name]).norm() / plain_gradients[name].norm()) for name in fused_gradients}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 5e-4, (worst, errors[worst])
    model.zero_grad()


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_heldout_loss_packed_behind_one_card_equals_the_samples_one_at_a_time(quantization, model, persona, tokenizer):
    """trainer eval's held-out loss packs like training does. Full precision: equal up to float32
    summation order. NF4 as the evaluator loads it: bitsandbytes' CPU inference kernel rounds
    activations to bfloat16 differently for different shapes (measured 7e-5 relative on the whole
    held-out set), so 1e-3 relative there."""
    from trainer.evaluation.heldout import load_heldout
    from trainer.evaluation.loss import heldout_loss

    samples = [item.sample for item in load_heldout(persona).persona[:5]]
    scored = model if quantization == "nf4" else load_model(EMBEDDED_SPEC, "none")
    packed_loss, packed_perplexity, packed_tokens = heldout_loss(scored, tokenizer, samples, "chat")
    apart_loss, _, apart_tokens = heldout_loss(scored, tokenizer, samples, "chat", packed=False)
    assert packed_tokens == apart_tokens == sum(sum(l != IGNORE for l in encode(tokenizer, s, "chat")["labels"]) for s in samples)
    assert packed_loss == pytest.approx(apart_loss, rel=1e-5 if quantization == "none" else 1e-3)
    assert packed_perplexity == pytest.approx(2.718281828 ** packed_loss)
