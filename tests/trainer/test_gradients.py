"""Gradients through the frozen 4-bit base stay right after an evaluation: bitsandbytes would
otherwise repack CPU weights into an inference layout without autograd (see qlora.py).

What this can catch depends on the CPU: the repacking only happens where bitsandbytes detects
AVX512-BF16. There, the negative control shows the bug (the gradient is wrong without the fix)
and the main test shows the fix. Elsewhere the bug cannot happen: the main test still runs (it
cannot fail there), and the negative control is skipped, saying so."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from core.model_resolver import EMBEDDED_SPEC, load_model
from trainer.qlora import keep_4bit_layers_differentiable


def first_layer_gradient(evaluate_first: bool, keep_differentiable: bool) -> torch.Tensor:
    model = load_model(EMBEDDED_SPEC, "nf4")
    if keep_differentiable:
        keep_4bit_layers_differentiable(model)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(1)
    for name, parameter in model.named_parameters():
        if "lora_" in name:  # non-zero B: the gradient of layer 0's A depends on everything above it
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.02
    ids = torch.randint(100, 40_000, (1, 48), generator=generator)
    if evaluate_first:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    return next(p.grad for n, p in model.named_parameters() if "layers.0.self_attn.q_proj.lora_A" in n).clone()


pytestmark = pytest.mark.model


def cpu_repacks_4bit_weights() -> bool:
    from bitsandbytes.nn.modules import has_avx512bf16

    return not torch.cuda.is_available() and has_avx512bf16()


@pytest.mark.skipif(not cpu_repacks_4bit_weights(), reason="no AVX512-BF16: bitsandbytes never repacks, the bug cannot occur here")
def test_negative_control_without_the_fix_evaluating_breaks_the_gradient(model_cache):
    reference = first_layer_gradient(evaluate_first=False, keep_differentiable=False)
    after_eval = first_layer_gradient(evaluate_first=True, keep_differentiable=False)
    assert not torch.allclose(after_eval, reference, rtol=1e-3, atol=1e-6)


def test_evaluating_does_not_change_training_gradients(model_cache):
    reference = first_layer_gradient(evaluate_first=False, keep_differentiable=True)
    after_eval = first_layer_gradient(evaluate_first=True, keep_differentiable=True)
    assert reference.abs().max() > 0
    torch.testing.assert_close(after_eval, reference)
