"""Loss only on the persona's replies, end-of-turn token included, in both prompt formats, and
training text identical to what the bot renders at reply time."""

from core.prompt import Turn, chat_messages, generation_prompt, render_alpaca
from trainer.dataset.transcript import record_turns
from trainer.encode import IGNORE, encode, show_masks

INPUT = "Zenitsu: Put a shirt on!\nYou: Are you hungry?\nInosuke: Always!\nYou: Tempura?"
OUTPUT = "Inosuke: TEMPURA! Hand it over!"


def sample(persona):
    turns = record_turns("Continue the conversation as Inosuke.", INPUT, OUTPUT, persona)
    return {"instruction": "Continue the conversation as Inosuke.", "input": INPUT, "output": OUTPUT,
            "messages": chat_messages(persona, turns)}


def trained_pieces(tokenizer, encoded):
    """Decoded runs of consecutive trained tokens."""
    pieces, current = [], []
    for token, label in zip(encoded["input_ids"], encoded["labels"]):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            pieces.append(tokenizer.decode(current))
            current = []
    if current:
        pieces.append(tokenizer.decode(current))
    return pieces


def test_chat_labels_cover_exactly_each_reply_and_its_end_of_turn(persona, tokenizer):
    encoded = encode(tokenizer, sample(persona), "chat")
    assert trained_pieces(tokenizer, encoded) == ["Always!<|im_end|>", "TEMPURA! Hand it over!<|im_end|>"]
    untrained = tokenizer.decode([t for t, l in zip(encoded["input_ids"], encoded["labels"]) if l == IGNORE])
    assert "Put a shirt on!" in untrained and "Tempura?" in untrained and persona.personality in untrained


def test_alpaca_labels_cover_the_response_and_eos(persona, tokenizer):
    encoded = encode(tokenizer, sample(persona), "alpaca")
    assert trained_pieces(tokenizer, encoded) == ["Inosuke: TEMPURA! Hand it over!<|im_end|>"]
    text = tokenizer.decode(encoded["input_ids"])
    assert text == render_alpaca("Continue the conversation as Inosuke.", INPUT, OUTPUT) + tokenizer.eos_token


def test_training_text_starts_with_exactly_the_bots_reply_prompt(persona, tokenizer):
    """What the model learns to continue is byte for byte what the bot will send it."""
    turns = [Turn("Zenitsu says hi", speaker="Zenitsu"), Turn("Who are you?")]
    reply = "Lord Inosuke! King of the Mountains!"
    messages = chat_messages(persona, turns + [Turn(reply, by_persona=True)])
    for prompt_format, record in (
        ("chat", {"messages": messages}),
        ("alpaca", {"instruction": "Who are you?", "input": "", "output": reply}),
    ):
        bot_turns = turns if prompt_format == "chat" else [Turn("Who are you?")]
        prompt = generation_prompt(tokenizer, persona, bot_turns, prompt_format)
        text = tokenizer.decode(encode(tokenizer, record, prompt_format)["input_ids"])
        assert text.startswith(prompt), prompt_format
        assert text[len(prompt):].startswith(reply)


def test_alpaca_multi_turn_reply_prompt_matches_the_seed_layout(persona, tokenizer):
    turns = [Turn("Are you hungry?"), Turn("Always!", by_persona=True), Turn("Tempura?")]
    assert generation_prompt(tokenizer, persona, turns, "alpaca") == (
        "### Instruction:\nContinue the conversation as Inosuke.\n\n### Input:\n"
        "You: Are you hungry?\nInosuke: Always!\nYou: Tempura?\n\n### Response:\nInosuke: "
    )


def test_show_masks_marks_the_trained_spans(persona, tokenizer):
    shown = show_masks(tokenizer, sample(persona), "chat")
    assert "⟦Always!<|im_end|>⟧" in shown and "⟦TEMPURA! Hand it over!<|im_end|>⟧" in shown
    assert shown.count("⟦") == 2
