"""The context a reply is generated from: the channel's recent turns, labelled, within a token
budget counted with the real tokenizer (oldest turns dropped first)."""

from __future__ import annotations

from core.db.history import StoredMessage
from core.persona import PersonaCard
from core.prompt import PromptFormat, Turn, generation_prompt


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
    limited before it gets here). Dropping turns only ever shortens the prompt, so the first
    start that fits is found by bisection: a few renders, not one per dropped turn."""

    def prompt_from(start: int) -> str:
        return generation_prompt(tokenizer, card, turns[start:], prompt_format)

    def fits(start: int) -> bool:
        return len(tokenizer(prompt_from(start), add_special_tokens=False)["input_ids"]) <= budget

    low, high = 0, len(turns) - 1  # the answer lies in [low, high]; high (the newest turn alone) is kept regardless
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return prompt_from(low), len(turns) - low
