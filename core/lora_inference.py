"""LoRA layers answer inference calls with PEFT's arithmetic and without its per-call overhead.

Why: the bot always serves an adapter, and PEFT's LoRA forward is written for training. Each of
the 210 LoRA layers of the embedded model (7 projections x 30 blocks) checks its arguments, walks
its adapters, calls three submodules (dropout, A, B) and, for 4-bit bases, copies the base
layer's output ("defensively", for autograd). Without that, one stream of the embedded model
decodes 1.14-1.18x faster on 2 CPU cores and a batch of 8 1.03x (bench/lora_serving.py,
2026-12-07): the overhead is per call, so it weighs most where each call does least.

The lean forward computes exactly what PEFT computes for a vanilla LoRA adapter in eval mode:
`base(x) + B(A(x)) * scaling`, the same kernels in the same order, so the outputs are equal bit
for bit (tests/core/test_lora_inference.py). Anything else goes to PEFT's own forward: gradients
enabled (training), a module in training mode (dropout), adapters disabled (a DPO/KTO reference),
merged weights, DoRA or another variant, mixed adapters per row, or autocast.
It reads the active adapter at every call, so an adapter swapped in place (load_adapter +
set_adapter) is used at once.

An input in another dtype than the adapter's is the rule on a GPU, not the exception: the base
computes in bf16 while PEFT keeps the adapter's weights in fp32 (autocast_adapter_dtype). The lean
forward casts as PEFT does, and PEFT's two layer kinds cast differently: a plain Linear adds the
fp32 product to the base's result and casts the sum back, a bitsandbytes layer casts the product
to the base's dtype before adding it. Without this, every layer of a bf16 model fell back to
PEFT's forward and the lean path never ran on a GPU.
"""

from __future__ import annotations

import functools

import torch  # imported once here: the lean forward runs 210 times a decoding step
import torch.nn.functional as F


def use_lean_lora(model) -> int:
    """Give every LoRA linear layer of `model` (a PeftModel) the lean inference forward; returns
    how many layers got it. Calling it again changes nothing."""
    from peft.tuners.lora import Linear as LoraLinear

    quantized: tuple[type, ...] = ()
    try:
        from peft.tuners.lora.bnb import Linear4bit, Linear8bitLt

        quantized = (Linear4bit, Linear8bitLt)
    except ImportError:  # bitsandbytes absent: no quantized LoRA layers to find
        pass
    count = 0
    for module in model.modules():
        if not isinstance(module, (LoraLinear, *quantized)):
            continue
        if not isinstance(module.__dict__.get("forward"), functools.partial):  # not yet installed
            peft_forward = type(module).forward.__get__(module)
            module.forward = functools.partial(_lean_forward, module, peft_forward, isinstance(module, quantized))
        count += 1
    return count


def _lean_forward(module, peft_forward, quantized: bool, x, *args, **kwargs):
    if (args or kwargs or torch.is_grad_enabled() or module.training or module.disable_adapters
            or module.merged or torch.is_autocast_enabled()):
        return peft_forward(x, *args, **kwargs)
    adapters = []
    for name in module.active_adapters:
        lora_a = module.lora_A._modules.get(name)
        if lora_a is None:  # an adapter this layer does not hold (PEFT skips it too)
            continue
        if name in module.lora_variant:
            return peft_forward(x)
        if lora_a.weight.dtype != x.dtype and not getattr(module, "cast_input_dtype_enabled", True):
            return peft_forward(x)  # PEFT's disable_input_dtype_casting: rare, left to it
        adapters.append((lora_a, module.lora_B[name], module.scaling[name]))
    result = module.base_layer(x)
    result_dtype = result.dtype
    for lora_a, lora_b, scaling in adapters:
        if x.dtype != lora_a.weight.dtype:  # PEFT's _cast_input_dtype (compared first: the call costs)
            x = x.to(lora_a.weight.dtype)
        # PEFT: lora_B(lora_A(dropout(x))) * scaling, dropout being the identity in eval mode.
        output = F.linear(F.linear(x, lora_a.weight, lora_a.bias), lora_b.weight, lora_b.bias) * scaling
        if quantized and output.dtype != result_dtype:
            output = output.to(result_dtype)
        result = result + output
    if result.dtype != result_dtype:  # a plain Linear's sum promoted to the adapter's dtype
        result = result.to(result_dtype)
    return result
