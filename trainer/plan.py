"""`python -m trainer plan --profile NAME`: estimate a training run's peak memory, term by term,
and say whether it fits the profile's memory budget. Needs only the model's config.json: the
architecture of Qwen2.5-3B-Instruct ships in trainer/model_configs/ for machines without it.

The terms follow what the QLoRA recipe in trainer/qlora.py holds at its peak:
- base weights: linear projections in NF4 with double quantization (4 bits + 8-bit absmax per
  64 weights + fp32 second-level constant per 256 blocks = 4.127 bits); embeddings and norms in
  the compute dtype;
- LoRA weights, their gradients and the optimizer state (8-bit AdamW: 2 bytes a parameter);
- activations for one micro-batch of T = batch_size x max_seq_len tokens (padding-free packing):
  with gradient checkpointing, each layer's input plus one layer recomputed; without, every layer;
  eager/math attention (CPU) also stores heads x T^2 attention probabilities per layer (an upper
  bound with shared-card packing, which attends span by span: reached by a sample as long as a row);
- the loss: TRL's fused LM head (trainer/qlora.py) projects onto the vocabulary in tiles of
  4,096 tokens x 32,768 vocabulary entries and folds each tile into running log-sum-exp
  statistics, recomputing the tiles in the backward pass, so the (T x vocabulary) logits never
  exist: one tile, the scored hidden states and their fp32 gradient. Only the trained positions
  are scored (trainer/qlora.py score_only_trained_positions); the plan counts all T, an upper
  bound, since a row may be all reply. The full
  logits it replaces (compute-dtype logits, an fp32 copy and its gradient: 1.45 GiB for Qwen's
  151,936-token vocabulary at T = 1,024) are shown beside it;
- with shared-card packing, the T x T boolean attention mask the collator builds
  (trainer/card_packing.py; SDPA models attend span by span and never expand it);
- a fixed allowance for the framework (CUDA workspaces; Python and torch on CPU).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelUnavailable, UserError
from trainer.profile import Profile

CONFIGS_DIR = Path(__file__).resolve().parent / "model_configs"
GIB = 2**30
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
# Values a decoder layer keeps per token for backward, in units of hidden (H) and intermediate (I)
# size: norms, q/k/v/o inputs and outputs, residuals, LoRA dropout copies of each projection input
# (~16 H), and the SwiGLU gate, up, activation, product and down input plus a dropout copy (~6 I).
ACTIVATION_H, ACTIVATION_I = 16, 6
# TRL's fused LM head tiles (trl/kernels/chunked_logprob.py TOKEN_CHUNK_SIZE and
# trl/trainer/utils.py _CHUNKED_LOGPROB_CHUNK_SIZE; tests/trainer/test_profile_and_plan.py checks
# them against the installed TRL).
FUSED_TOKENS, FUSED_VOCAB = 4096, 32768


@dataclass(frozen=True)
class Architecture:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> Architecture:
        heads = config["num_attention_heads"]
        return cls(config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], heads,
                   config.get("num_key_value_heads", heads), config.get("head_dim") or config["hidden_size"] // heads,
                   config["vocab_size"], bool(config.get("tie_word_embeddings", False)))

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear projection in one layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv), "o_proj": (q, self.hidden),
                "gate_proj": (self.hidden, self.intermediate), "up_proj": (self.hidden, self.intermediate),
                "down_proj": (self.intermediate, self.hidden)}


def model_config(spec: str) -> dict:
    """config.json of the model: from its resolved folder, else the copy shipped here."""
    from core.model_resolver import resolve

    try:
        return json.loads((resolve(spec).folder / "config.json").read_text())
    except ModelUnavailable as unavailable:
        shipped = CONFIGS_DIR / f"{spec.rstrip('/').split('/')[-1]}.json"
        if shipped.is_file():
            return json.loads(shipped.read_text())
        raise unavailable


@dataclass(frozen=True)
class Estimate:
    terms: list[tuple[str, float, str]]  # (name, bytes, how it was counted)
    budget_gib: float
    tokens: int

    @property
    def total(self) -> float:
        return sum(b for _, b, _ in self.terms)

    @property
    def fits(self) -> bool:
        return self.total <= self.budget_gib * GIB


def estimate(profile: Profile, arch: Architecture, on_gpu: bool) -> Estimate:
    compute = 2 if on_gpu else 4  # bf16 on GPU, fp32 on CPU (see bot/model_resolver.py)
    projections = arch.projections()
    if profile.lora.target_modules == "all-linear":
        targets = list(projections)
    else:
        targets = [t for t in profile.lora.target_modules if t in projections]
    linear = arch.layers * sum(i * o for i, o in projections.values())
    other = arch.vocab * arch.hidden * (1 if arch.tied else 2) + arch.layers * 2 * arch.hidden + arch.hidden
    lora = arch.layers * sum(profile.lora.r * sum(projections[t]) for t in targets)
    tokens = profile.batch_size * profile.max_seq_len
    eight_bit = "8bit" in profile.optimizer
    per_token_layer = (ACTIVATION_H * arch.hidden + ACTIVATION_I * arch.intermediate) * compute
    if profile.gradient_checkpointing:
        activations = arch.layers * tokens * arch.hidden * compute + tokens * per_token_layer
        how = f"{arch.layers} layer inputs + 1 layer recomputed, {tokens:,} tokens"
    else:
        activations = arch.layers * tokens * per_token_layer
        how = f"{arch.layers} layers x {tokens:,} tokens x ({ACTIVATION_H}H+{ACTIVATION_I}I)"
    terms = [
        ("base weights, projections" + (" (NF4)" if profile.quantization == "nf4" else ""),
         linear * (NF4_BITS / 8 if profile.quantization == "nf4" else compute),
         f"{linear / 1e9:.2f}B weights x {NF4_BITS if profile.quantization == 'nf4' else compute * 8:.3g} bits"),
        ("base weights, embeddings + norms", other * compute, f"{other / 1e6:.0f}M x {compute} bytes"),
        ("LoRA weights", lora * compute, f"{lora / 1e6:.1f}M params, r={profile.lora.r}, {len(targets)} projections x {arch.layers} layers"),
        ("LoRA gradients", lora * compute, "same size as the weights"),
        ("optimizer state", lora * (2 if eight_bit else 8), "2 x 8-bit moments" if eight_bit else "2 x fp32 moments"),
        ("activations", activations, how),
    ]
    if profile.packing and profile.shared_card:
        terms.append(("attention mask (shared-card packing)", tokens**2,
                      f"{tokens:,}^2 booleans (SDPA attends span by span, never expanding them)"))
    if not on_gpu:
        terms.append(("attention probabilities (CPU math attention)", arch.layers * arch.heads * tokens**2 * 4,
                      f"{arch.layers} layers x {arch.heads} heads x {tokens:,}^2 x 4 bytes"))
    full_logits = tokens * arch.vocab * (compute + 4 + 4)
    tile = min(tokens, FUSED_TOKENS) * min(arch.vocab, FUSED_VOCAB) * compute
    scored = tokens * arch.hidden * (compute + 4 + compute) + tokens * 7 * 4
    terms.append(("loss: fused LM head (TRL)", tile + scored,
                  f"a {min(tokens, FUSED_TOKENS):,} x {min(arch.vocab, FUSED_VOCAB):,} tile + {tokens:,} scored hidden states "
                  f"and fp32 gradient; the full logits would be {full_logits / GIB:.2f} GiB"))
    terms.append(("framework allowance", 0.3 * GIB if on_gpu else 1.0 * GIB,
                  "CUDA workspaces" if on_gpu else "Python, torch, tokenizer"))
    return Estimate(terms, profile.memory_budget_gib, tokens)


def print_plan(profile: Profile, target: str) -> Estimate:
    from rich.console import Console
    from rich.table import Table

    if target not in ("gpu", "cpu"):
        raise UserError(f"--device: expected gpu or cpu, got {target!r}")
    arch = Architecture.from_config(model_config(profile.model))
    result = estimate(profile, arch, on_gpu=target == "gpu")
    table = Table(title=f"{profile.name}: {profile.model} on {target.upper()}, peak memory estimate")
    table.add_column("term")
    table.add_column("GiB", justify="right")
    table.add_column("counted as")
    for name, size, how in result.terms:
        table.add_row(name, f"{size / GIB:.2f}", how)
    table.add_section()
    table.add_row("total", f"{result.total / GIB:.2f}", f"budget {result.budget_gib:g} GiB")
    console = Console()
    console.print(table)
    verdict = "fits" if result.fits else "does NOT fit"
    console.print(f"{profile.name} {verdict}: {result.total / GIB:.2f} GiB estimated against a {result.budget_gib:g} GiB budget")
    return result
