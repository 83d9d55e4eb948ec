"""Fixtures shared by the trainer tests."""

import pytest

QUESTIONS = ["Who are you?", "Fight me!", "What is 2 plus 2?", "Where is Tanjiro?", "Tempura?", "Good morning!"]
ANSWERS = ["LORD INOSUKE!", "HAH! Gladly!", "Four! Easy!", "Doing laundry!", "TEMPURA!", "MORNING!"]
# A multi-turn transcript: three trained replies in one sample.
CONVERSATION = ("Keep the conversation going.", "You: Hey Inosuke!\nInosuke: WHO DARES?\nYou: It's me, Zenitsu's friend.\n"
                "Inosuke: Never heard of you!\nYou: Want to race?", "Inosuke: A RACE? I'LL CRUSH YOU!")


@pytest.fixture(scope="session")
def persona_samples(persona):
    """persona_samples(n, conversation=False): n short persona samples as the data pipeline writes
    them (chat messages, the persona card as system), plus a multi-turn one if asked."""
    from core.prompt import chat_messages
    from trainer.dataset.records import Origin, Record
    from trainer.dataset.transcript import record_turns

    def make(n: int, conversation: bool = False) -> list[dict]:
        triples = [(q, "", a) for q, a in list(zip(QUESTIONS, ANSWERS))[:n]]
        if conversation:
            triples.append(CONVERSATION)
        return [Record(i, x, o, "test", Origin("t.jsonl", line), chat_messages(persona, record_turns(i, x, o, persona))).to_json()
                for line, (i, x, o) in enumerate(triples, start=1)]

    return make
