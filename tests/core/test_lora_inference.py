"""The lean LoRA inference forward (core/lora_inference.py): the served adapter's outputs equal
PEFT's bit for bit, PEFT's own forward still runs wherever it must (training, a disabled adapter
for a reference model), and an adapter swapped in place is used at once. A toy model here; the
embedded model in NF4 in the model test at the end."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from core.lora_inference import use_lean_lora


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def lora(seed: int) -> LoraConfig:
    torch.manual_seed(seed)
    # init_lora_weights=False: B is random too, so the adapter changes the output
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.3, target_modules=["up", "down"], init_lora_weights=False)


@pytest.fixture
def toy():  # not `model`: that fixture name marks a test as loading weights
    torch.manual_seed(0)
    peft = get_peft_model(Toy(), lora(1), adapter_name="v1")
    peft.eval()
    return peft


def without_lean(model) -> None:
    for module in model.modules():
        module.__dict__.pop("forward", None)


def calls_into_lora_submodules(model) -> list:
    """Records each call PEFT's forward makes to a lora_A submodule (the lean one makes none)."""
    calls = []
    for name, module in model.named_modules():
        if name.endswith("lora_A.v1") or name.endswith("lora_A.v2"):
            module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_inference_equals_peft_bit_for_bit_without_its_submodule_calls(toy):
    model = toy
    x = torch.randn(3, 5, 16)
    with torch.inference_mode():
        expected = model(x)
        base = model.get_base_model().down.base_layer(torch.relu(model.get_base_model().up.base_layer(x)))
    assert not torch.allclose(expected, base)  # the adapter matters
    assert use_lean_lora(model) == 2 and use_lean_lora(model) == 2  # installing again is harmless
    calls = calls_into_lora_submodules(model)
    with torch.inference_mode():
        got = model(x)
    with torch.no_grad():
        got_no_grad = model(x)
    assert torch.equal(got, expected) and torch.equal(got_no_grad, expected)
    assert calls == []  # the lean path ran


def test_training_still_goes_through_peft_with_dropout_and_gradients(toy):
    model = toy
    use_lean_lora(model)
    calls = calls_into_lora_submodules(model)
    model.train()
    x = torch.randn(4, 16)
    loss = model(x).square().mean()
    loss.backward()
    lora_a = model.get_base_model().up.lora_A["v1"].weight
    assert calls and lora_a.grad is not None and lora_a.grad.abs().sum() > 0
    torch.manual_seed(5)
    first = model(x)
    torch.manual_seed(6)
    assert not torch.equal(first, model(x))  # dropout is active in training mode
    model.eval()
    with torch.enable_grad():  # eval mode but gradients wanted (a loss on held-out data): PEFT's forward
        calls.clear()
        model(x).sum().backward()
    assert calls


def test_a_disabled_adapter_gives_the_base_and_a_swapped_adapter_is_used_at_once(toy):
    model = toy
    x = torch.randn(2, 16)
    use_lean_lora(model)
    inner = model.get_base_model()
    with torch.inference_mode():
        base = inner.down.base_layer(torch.relu(inner.up.base_layer(x)))
        with model.disable_adapter():  # how TRL's DPO/KTO get the reference model's outputs
            assert torch.equal(model(x), base)
        before = model(x)
    model.add_adapter("v2", lora(2))  # as swap_adapter does: a second adapter in the same layers
    model.set_adapter("v2")
    model.delete_adapter("v1")
    model.eval()
    with torch.inference_mode():
        lean = model(x)
    without_lean(model)
    with torch.inference_mode():
        peft = model(x)
    assert torch.equal(lean, peft) and not torch.equal(lean, before)


class Bf16Toy(torch.nn.Module):
    """What a GPU serves: a 4-bit base computing in bf16 beside a plain bf16 layer. PEFT keeps
    the adapters in fp32 there, so every LoRA layer sees an input in another dtype than its own."""
    is_loaded_in_4bit = True  # how PEFT tells a bitsandbytes model: its 4-bit LoRA layer is used

    def __init__(self):
        import bitsandbytes as bnb

        super().__init__()
        self.up = bnb.nn.Linear4bit(16, 32, compute_dtype=torch.bfloat16, quant_type="nf4")
        self.up.weight = bnb.nn.Params4bit(torch.randn(32, 16), requires_grad=False, quant_type="nf4")
        self.up.to("cpu")  # quantizes the weight
        self.down = torch.nn.Linear(32, 8, dtype=torch.bfloat16)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def test_a_bf16_base_with_fp32_adapters_takes_the_lean_path_and_equals_peft_bit_for_bit():
    from peft.tuners.lora import Linear
    from peft.tuners.lora.bnb import Linear4bit

    torch.manual_seed(0)
    model = get_peft_model(Bf16Toy(), lora(1), adapter_name="v1").eval()
    inner = model.get_base_model()
    assert isinstance(inner.up, Linear4bit) and type(inner.down) is Linear  # PEFT's two ways of casting
    assert inner.up.lora_A["v1"].weight.dtype == inner.down.lora_A["v1"].weight.dtype == torch.float32
    x = torch.randn(3, 5, 16, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = model(x)
    use_lean_lora(model)
    calls = calls_into_lora_submodules(model)
    with torch.inference_mode():
        got = model(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
    assert calls == []  # the lean path ran in both layers instead of handing the call to PEFT


@pytest.mark.model
def test_the_served_adapter_in_nf4_gives_peft_logits_bit_for_bit(trained_adapter):
    from core.served_model import load_served

    served = load_served(trained_adapter.adapter)
    assert sum("forward" in m.__dict__ for m in served.model.modules()) == 210  # 7 projections x 30 blocks
    ids = served.tokenizer("Inosuke, what do you eat for breakfast?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        lean = served.model(input_ids=ids).logits
        without_lean(served.model)
        peft = served.model(input_ids=ids).logits
    assert torch.equal(lean, peft)
