"""The adapter merged into its base in full precision: a plain HF folder (safetensors, tokenizer,
chat template, generation config ending at the end-of-turn token) that transformers, vLLM and
llama.cpp's converter load as a base model."""

from __future__ import annotations

import logging
from pathlib import Path

from core.decoding import REPETITION_PENALTY
from core.registry import AdapterInfo

log = logging.getLogger(__name__)


def write_merged(info: AdapterInfo, end_of_turn: str, out: Path, max_new_tokens: int) -> None:
    """Base in float32 + LoRA delta, saved in the base's own dtype (QLoRA trained the adapter on an
    NF4 base; merging into the full-precision base is the standard export, its effect is measured
    by the parity test)."""
    import torch
    from peft import PeftModel
    from transformers import GenerationConfig

    from core.model_resolver import load_model, load_tokenizer, resolve

    import json

    base_dtype = json.loads((resolve(info.base_model).folder / "config.json").read_text()).get("dtype", "float32")
    log.info("merging %s into %s (full precision)", info.version, info.base_model)
    model = PeftModel.from_pretrained(load_model(info.base_model, "none", device="cpu"), str(info.path))
    merged = model.merge_and_unload()
    tokenizer = load_tokenizer(info.base_model)
    eot = tokenizer.convert_tokens_to_ids(end_of_turn)
    if eot is None or eot == tokenizer.unk_token_id:
        from core.errors import UserError

        raise UserError(f"{info.path / 'manifest.json'}: end_of_turn_token {end_of_turn!r} is not a token of {info.base_model}")
    dtype = getattr(torch, base_dtype) if isinstance(base_dtype, str) and hasattr(torch, base_dtype) else torch.float32
    merged = merged.to(dtype)
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    # Whoever generates with the folder stops at the end of the persona's turn, and decodes as the bot does.
    merged.generation_config = GenerationConfig(
        bos_token_id=merged.config.bos_token_id, eos_token_id=eot, pad_token_id=tokenizer.pad_token_id,
        do_sample=False, repetition_penalty=REPETITION_PENALTY, max_new_tokens=max_new_tokens)
    merged.save_pretrained(out, safe_serialization=True)
    # The tokenizer's EOS is what llama.cpp's converter writes as the GGUF's end of generation.
    tokenizer.eos_token = end_of_turn
    tokenizer.save_pretrained(out)
