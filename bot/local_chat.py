"""A conversation with a model in this process, without database or worker: what
`python -m bot --ask` and `python -m trainer chat` use to try a model or an adapter."""

from __future__ import annotations

from pathlib import Path

from bot.generate import Generation


class LocalConversation:
    def __init__(self, card_path: Path, *, adapter: Path | None = None, model: str | None = None,
                 quantization: str | None = None, max_new_tokens: int = 128):
        from bot.adapters import load_adapted_model, read_adapter
        from bot.model_resolver import EMBEDDED_SPEC, load_model, load_tokenizer
        from bot.persona import load_card

        self.card = load_card(card_path)
        if adapter is not None:
            self.adapter = read_adapter(adapter)
            self.base_model, self.prompt_format = self.adapter.base_model, self.adapter.prompt_format
            self.model = load_adapted_model(self.adapter, quantization)
        else:
            self.adapter = None
            self.base_model, self.prompt_format = model or EMBEDDED_SPEC, "chat"
            self.model = load_model(self.base_model, quantization or "nf4")
        self.tokenizer = load_tokenizer(self.base_model)
        self.max_new_tokens = max_new_tokens
        self.turns = []

    @property
    def name(self) -> str:
        return self.card.aliases[-1]

    def say(self, text: str) -> tuple[str, Generation]:
        """The persona's reply to `text`, given everything said so far."""
        from bot.generate import generate, reply_text
        from bot.prompt import Turn, generation_prompt

        self.turns.append(Turn(text))
        prompt = generation_prompt(self.tokenizer, self.card, self.turns, self.prompt_format)
        [answer] = generate(self.model, self.tokenizer, [prompt], self.max_new_tokens)
        reply = reply_text(answer.text, self.card)
        self.turns.append(Turn(reply, by_persona=True))
        return reply, answer
