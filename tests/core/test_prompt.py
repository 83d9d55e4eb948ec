from core.prompt import Turn, chat_messages, render_alpaca, render_chat, system_prompt


def test_alpaca_template_is_the_seeds_character_for_character():
    assert render_alpaca("Greet me.", "", "HAH!") == "### Instruction:\nGreet me.\n\n### Response:\nHAH!"
    assert (
        render_alpaca("Continue.", "You: hi", "Inosuke: HAH!")
        == "### Instruction:\nContinue.\n\n### Input:\nYou: hi\n\n### Response:\nInosuke: HAH!"
    )
    # The prompt a model completes at reply time is the same text up to the response.
    assert render_alpaca("Q", "") == "### Instruction:\nQ\n\n### Response:\n"


def test_system_message_is_the_persona_card(persona):
    messages = chat_messages(persona, [Turn("hi"), Turn("HAH!", by_persona=True)])
    assert messages[0] == {"role": "system", "content": system_prompt(persona)}
    assert persona.description in messages[0]["content"] and persona.personality in messages[0]["content"]
    assert messages[1:] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "HAH!"}]


def test_other_speakers_are_labelled_and_consecutive_lines_merged(persona):
    turns = [
        Turn("Inosuke, dinner!", speaker="Tanjiro"),
        Turn("Don't steal my food.", speaker="Zenitsu"),
        Turn("Can I come?"),
        Turn("Food!", by_persona=True),
        Turn("Mine!", by_persona=True),
        Turn("ok"),
    ]
    assert chat_messages(persona, turns)[1:] == [
        {"role": "user", "content": "Tanjiro: Inosuke, dinner!\nZenitsu: Don't steal my food.\nYou: Can I come?"},
        {"role": "assistant", "content": "Food!\nMine!"},
        {"role": "user", "content": "ok"},
    ]


def test_chat_render_uses_the_models_template(persona, tokenizer):
    text = render_chat(tokenizer, chat_messages(persona, [Turn("Who are you?")]), add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are Inosuke Hashibira.")
    assert text.endswith("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")
