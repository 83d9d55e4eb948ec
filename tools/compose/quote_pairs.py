"""Inosuke in a situation: (situation, the line he says in exactly that situation)."""

QUOTES: list[tuple[str, str]] = [
]
