"""Packed, padding-free batches: several samples in one row with no padding, and each sample
attends only to itself, so the packed loss is exactly the loss of the samples trained apart."""

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from core.model_resolver import EMBEDDED_SPEC, load_model
from trainer.encode import IGNORE, encode
from trainer.profile import load_profile
from trainer.qlora import make_trainer

pytestmark = pytest.mark.model


def test_packed_rows_hold_several_samples_without_padding(persona_samples, tokenizer, model_cache, tmp_path):
    """TRL's packing, the path with `shared_card: false` (trainer/card_packing.py is the default)."""
    profile = load_profile("smollm2-cpu", ["batch_size=2", "max_seq_len=512", "shared_card=false"])
    samples = persona_samples(6)
    trainer = make_trainer(load_model(EMBEDDED_SPEC, "nf4"), tokenizer, samples, samples[:2], profile, str(tmp_path))
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1  # one flat row, no padding
    # Without a KV cache transformers turns the position_ids resets into a block-diagonal mask;
    # with one, packed samples would attend to each other. Training must run without.
    assert trainer.model.config.use_cache is False
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) >= 3  # ~180 tokens a sample: at least three share each 512-token row
    lengths = sorted(len(encode(tokenizer, s, "chat")["input_ids"]) for s in samples)
    assert batch["input_ids"].shape[1] <= 2 * profile.max_seq_len and batch["input_ids"].shape[1] >= sum(lengths[:3])


def test_packed_loss_equals_the_samples_apart(persona_samples, tokenizer, model_cache):
    model = load_model(EMBEDDED_SPEC, "none")
    encoded = [encode(tokenizer, s, "chat") for s in persona_samples(3)]
    collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    packed = collate([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in encoded])
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        apart = [model(input_ids=torch.tensor([e["input_ids"]])).logits[0] for e in encoded]
    torch.testing.assert_close(logits, torch.cat(apart), atol=1e-3, rtol=1e-3)
    trained = sum(sum(l != IGNORE for l in e["labels"]) for e in encoded)
    assert trained == int((packed["labels"] != IGNORE).sum())
