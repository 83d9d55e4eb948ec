"""Run as: python -m tools.compose

Writes the curated dataset in data/ (persona, quotes, conversations, generic_qa JSONL) from the
hand-written lines in this folder, deterministically. Edit the lines here and rerun; the JSONL
files are its output.
"""

from __future__ import annotations

import json
import random
from itertools import product
from pathlib import Path

from tools.compose.conversation_lines import TOPICS
from tools.compose.persona_lines import FACTS as PERSONA_FACTS
from tools.compose.qa_lines import ARITHMETIC_ANSWERS, ARITHMETIC_QUESTIONS, FACTS as QA_FACTS
from tools.compose.quote_lines import QUOTES

DATA = Path(__file__).resolve().parents[2] / "data"
PERSONA = "Inosuke"
CONTINUE = "Continue the conversation as Inosuke."
CONVERSATIONS_PER_TOPIC = 25
SEED = 7


def sample(instruction: str, output: str, input: str = "") -> dict:
    return {"instruction": instruction, "input": input, "output": output}


def persona_samples() -> list[dict]:
    return [sample(q, answers[i % len(answers)]) for questions, answers in PERSONA_FACTS for i, q in enumerate(questions)]


def quote_samples() -> list[dict]:
    return [sample(situation, line) for situation, lines in QUOTES for line in lines]


def user_line(text: str) -> str:
    """"Zenitsu: ..." is spoken by Zenitsu; anything else by the anonymous "You"."""
    head = text.split(":", 1)[0]
    return text if ":" in text and head.istitle() and " " not in head else f"You: {text}"


def conversation_samples(rng: random.Random) -> list[dict]:
    samples = []
    for name, exchanges in TOPICS.items():
        # Every way of walking the topic for 1..len(exchanges) exchanges, then a seeded pick,
        # weighted toward longer talks so the 2-6 turn range is covered.
        walks = []
        for length in range(1, len(exchanges) + 1):
            slots = [range(len(side)) for user, reply in exchanges[:length] for side in (user, reply)]
            walks += [(length, choice) for choice in product(*slots)]
        rng.shuffle(walks)
        per_length = {length: CONVERSATIONS_PER_TOPIC * length // sum(range(1, len(exchanges) + 1)) for length in range(1, len(exchanges) + 1)}
        per_length[len(exchanges)] += CONVERSATIONS_PER_TOPIC - sum(per_length.values())
        for length, choice in walks:
            if per_length[length] == 0:
                continue
            per_length[length] -= 1
            lines = []
            for k, (user, reply) in enumerate(exchanges[:length]):
                lines.append(user_line(user[choice[2 * k]]))
                lines.append(f"{PERSONA}: {reply[choice[2 * k + 1]]}")
            samples.append(sample(CONTINUE, lines[-1], "\n".join(lines[:-1])))
    return samples


ARITHMETIC_SAMPLES = 56


def heldout_questions() -> set[str]:
    """The held-out evaluation questions (evals/): never composed into training data."""
    path = Path(__file__).resolve().parents[2] / "evals" / "generic_qa.jsonl"
    return {json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def qa_samples(rng: random.Random) -> list[dict]:
    samples = [sample(q, a) for q, a in QA_FACTS]
    seen = heldout_questions()
    while len(samples) < len(QA_FACTS) + ARITHMETIC_SAMPLES:
        template = rng.choice(ARITHMETIC_QUESTIONS)
        a, b = rng.randint(2, 60), rng.randint(2, 30)
        if "minus" in template or "-" in template:
            a, b = max(a, b), min(a, b)
            result = a - b
        elif "times" in template or " x " in template:
            a, b = a % 13 + 2, b % 12 + 2
            result = a * b
        else:
            result = a + b
        question = template.format(a=a, b=b)
        if question in seen:
            continue
        seen.add(question)
        samples.append(sample(question, rng.choice(ARITHMETIC_ANSWERS).format(result=result)))
    return samples


def write(name: str, rows: list[dict]) -> None:
    path = DATA / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{path}: {len(rows)} samples")


def main() -> None:
    rng = random.Random(SEED)
    write("persona", persona_samples())
    write("quotes", quote_samples())
    write("conversations", conversation_samples(rng))
    write("generic_qa", qa_samples(rng))


if __name__ == "__main__":
    main()
