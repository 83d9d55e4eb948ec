"""The persona style score, offline, on sentence embeddings (trainer/embeddings.py). A reply
scores its cosine similarity to the held-out reference reply for the same prompt: the character's
own line scores 1.0, generic assistant text far less.
"""

from __future__ import annotations

from trainer.embeddings import Embedder


class StyleScorer(Embedder):
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
