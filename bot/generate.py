"""Generation for a batch of conversations, stopping at the end-of-turn token."""

from __future__ import annotations

from bot.prompt import render_chat


def generate_replies(model, tokenizer, conversations: list[list[dict[str, str]]], max_new_tokens: int = 128) -> list[str]:
    """Greedy replies, one per conversation, generated together in one left-padded batch."""
    import torch

    texts = [render_chat(tokenizer, messages, add_generation_prompt=True) for messages in conversations]
    tokenizer.padding_side = "left"  # generation continues at the right edge of every row
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
