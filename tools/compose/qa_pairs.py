"""Ordinary questions answered correctly, answer first, in Inosuke's voice: (question, answer).
Arithmetic rows are computed: arithmetic() yields (question, answer, result) and the composer
checks that the answer states the result."""

QA: list[tuple[str, str]] = [
]

# (a, operator, b, question template, answer template): each template written for its row.
ARITHMETIC: list[tuple[int, str, int, str, str]] = [
]

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def arithmetic() -> list[tuple[str, str, int]]:
    rows = []
    for a, op, b, question, answer in ARITHMETIC:
        result = OPERATORS[op](a, b)
        rows.append((question.format(a=a, b=b), answer.format(a=a, b=b, result=result), result))
    return rows
