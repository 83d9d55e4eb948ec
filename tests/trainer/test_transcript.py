"""Transcripts split on speaker prefixes into user/assistant turns, so that the persona's lines
are what the model learns to write and nobody else's are."""

from core.prompt import Turn, chat_messages
from trainer.dataset.transcript import record_turns, split_transcript

CONTINUE = "Continue the conversation as Inosuke."


def test_seed_style_transcript(persona):
    turns = record_turns(CONTINUE, "You: Hungry?\nInosuke: Always!\nYou: Tempura?", "Inosuke: TEMPURA!", persona)
    assert turns == [
        Turn("Hungry?"), Turn("Always!", by_persona=True), Turn("Tempura?"), Turn("TEMPURA!", by_persona=True),
    ]


def test_lines_without_a_prefix_continue_the_turn_before(persona):
    turns = split_transcript("You: first line\nsecond line\nInosuke: HAH!\nand more", persona, default_persona=False)
    assert turns == [Turn("first line\nsecond line"), Turn("HAH!\nand more", by_persona=True)]


def test_leading_unprefixed_lines_belong_to_user_in_input_and_persona_in_output(persona):
    assert split_transcript("Just some context\nYou: hi", persona, default_persona=False) == [Turn("Just some context"), Turn("hi")]
    turns = record_turns(CONTINUE, "You: hi", "FIGHT ME!\nYou: no", persona)
    assert turns == [Turn("hi"), Turn("FIGHT ME!", by_persona=True)]  # the trailing user line is dropped


def test_other_speaker_names_are_kept_as_labels(persona):
    turns = record_turns(CONTINUE, "Zenitsu: Put a shirt on!\nTanjiro Kamado: Please, Inosuke.\nYou: Well?", "Inosuke: NO!", persona)
    assert turns[:3] == [Turn("Put a shirt on!", speaker="Zenitsu"), Turn("Please, Inosuke.", speaker="Tanjiro Kamado"), Turn("Well?")]
    assert chat_messages(persona, turns)[1]["content"] == "Zenitsu: Put a shirt on!\nTanjiro Kamado: Please, Inosuke.\nYou: Well?"


def test_windows_line_endings(persona):
    turns = record_turns(CONTINUE, "You: hi\r\nInosuke: HAH!\r\nYou: again\r\n", "Inosuke: FIGHT!\r\n", persona)
    assert turns == [Turn("hi"), Turn("HAH!", by_persona=True), Turn("again"), Turn("FIGHT!", by_persona=True)]


def test_empty_turns_are_dropped(persona):
    turns = record_turns(CONTINUE, "You:\nInosuke:   \nYou: hello", "Inosuke: HAH!", persona)
    assert turns == [Turn("hello"), Turn("HAH!", by_persona=True)]


def test_transcript_that_starts_with_the_persona(persona):
    turns = record_turns(CONTINUE, "Inosuke Hashibira: Who goes there?!\nYou: A friend.", "Inosuke: Friend?! Fight me!", persona)
    messages = chat_messages(persona, turns)
    assert [m["role"] for m in messages] == ["system", "assistant", "user", "assistant"]


def test_colons_inside_text_are_not_speakers(persona):
    text = "You: my list: tempura, rice\nnote that: it's late\nInosuke: Rule one: WIN"
    assert split_transcript(text, persona, default_persona=False) == [
        Turn("my list: tempura, rice\nnote that: it's late"), Turn("Rule one: WIN", by_persona=True),
    ]


def test_plain_record_is_one_exchange_with_input_appended(persona):
    assert record_turns("Translate to boar", "Hello friend", "OINK! FRIEND!", persona) == [
        Turn("Translate to boar\n\nHello friend"), Turn("OINK! FRIEND!", by_persona=True),
    ]
