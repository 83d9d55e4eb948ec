"""The context a reply is generated from: the channel's recent turns, labelled, within a token
budget counted with the real tokenizer (oldest turns dropped first)."""

from __future__ import annotations

from bot.history import StoredMessage
from bot.persona import PersonaCard
from bot.prompt import PromptFormat, Turn, generation_prompt


def turns_from_history(messages: list[StoredMessage]) -> list[Turn]:
    """Persona lines are the bot's; everybody else's are user turns, labelled by display name
    as soon as more than one person is talking (a one-to-one chat stays unlabelled, like the
    `You:` lines the adapter was trained on)."""
    humans = {m.author_id for m in messages if not m.by_bot}
    labelled = len(humans) > 1
    return [Turn(m.content, by_persona=m.by_bot, speaker=m.author_name if labelled and not m.by_bot else None)
            for m in messages]


def fit_prompt(tokenizer, card: PersonaCard, turns: list[Turn], budget: int,
               prompt_format: PromptFormat = "chat") -> tuple[str, int]:
    """The generation prompt of the longest recent stretch of `turns` that fits `budget`
    tokens, and how many turns it holds. The newest turn is always kept (input length is
    limited before it gets here)."""
    start = 0
    while True:
        prompt = generation_prompt(tokenizer, card, turns[start:], prompt_format)
        if start == len(turns) - 1 or len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= budget:
            return prompt, len(turns) - start
        start += 1
