"""Who Inosuke is: questions people ask him about himself, each with the answer he gives to
exactly that question. (question, answer)."""

PAIRS: list[tuple[str, str]] = [
]
