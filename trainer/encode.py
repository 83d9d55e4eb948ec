"""Tokenize a sample for training with labels only on the persona's replies.

The text comes from the one prompt builder (bot/prompt.py), so training sees exactly what the
bot sends at reply time. Trained spans: each assistant reply plus the end-of-turn token after
it (a model never trained on that token never stops). System, user turns and template tokens
are masked (-100).
"""

from __future__ import annotations

from core.errors import UserError
from core.prompt import PromptFormat, neutralize, render_chat, safe_alpaca, special_tokens

IGNORE = -100


def chat_text_and_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    text = render_chat(tokenizer, messages)
    eot = tokenizer.eos_token
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        # The reply starts where the generation prompt for it ends: the same prefix the bot renders.
        prefix = render_chat(tokenizer, messages[:index], add_generation_prompt=True)
        if not text.startswith(prefix):
            raise UserError(
                "the chat template of this model does not render a conversation as the sum of its turns, so "
                "the trained spans cannot be located; use prompt_format: alpaca"
            )
        end = text.find(eot, len(prefix) + len(message["content"]))
        if end < 0:
            raise UserError(f"the chat template does not close an assistant turn with {eot!r}")
        spans.append((len(prefix), end + len(eot)))
    return text, spans


def alpaca_text_and_spans(tokenizer, sample: dict) -> tuple[str, list[tuple[int, int]]]:
    # The same inert text the bot renders (control tokens spelled out, headers defused).
    prompt = safe_alpaca(tokenizer, sample["instruction"], sample["input"])
    text = prompt + neutralize(sample["output"], special_tokens(tokenizer)) + tokenizer.eos_token
    return text, [(len(prompt), len(text))]


def text_and_spans(tokenizer, sample: dict, prompt_format: PromptFormat) -> tuple[str, list[tuple[int, int]]]:
    if prompt_format == "chat":
        return chat_text_and_spans(tokenizer, sample["messages"])
    return alpaca_text_and_spans(tokenizer, sample)


def encode(tokenizer, sample: dict, prompt_format: PromptFormat) -> dict[str, list[int]]:
    """input_ids and labels (token id inside a trained span, -100 elsewhere)."""
    text, spans = text_and_spans(tokenizer, sample, prompt_format)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(encoded["input_ids"], encoded["offset_mapping"])
    ]
    return {"input_ids": encoded["input_ids"], "labels": labels}


def show_masks(tokenizer, sample: dict, prompt_format: PromptFormat) -> str:
    """The rendered sample with trained tokens between ⟦ and ⟧, for --show-masks."""
    encoded = encode(tokenizer, sample, prompt_format)
    pieces, inside = [], False
    for token, label in zip(encoded["input_ids"], encoded["labels"]):
        trained = label != IGNORE
        if trained != inside:
            pieces.append("⟦" if trained else "⟧")
            inside = trained
        pieces.append(tokenizer.decode([token]))
    if inside:
        pieces.append("⟧")
    return "".join(pieces)
