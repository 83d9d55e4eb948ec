"""The one prompt builder, used by the bot at reply time and by the trainer for every sample.

Two formats:
- chat: the model's own chat template; the persona card is the system message, the persona's
  lines are assistant turns and everybody else's are user turns (labelled by name when the
  conversation has more than the one anonymous user);
- alpaca: the seed's text template, character for character.
A template mismatch between training and serving is the classic failure of persona bots (the
model never stops, or invents the user's next line), hence one builder for both sides.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from core.persona import DEFAULT_USER_LABEL, PersonaCard
from core.transcript_labels import speaker_line

PromptFormat = Literal["chat", "alpaca"]

# Inserted into text that imitates the template, so that it tokenizes as plain text.
ZERO_WIDTH_SPACE = "\u200b"
ALPACA_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}"
ALPACA_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n{output}"


@dataclass(frozen=True)
class Turn:
    """One line of a conversation. speaker=None is the anonymous user of a one-to-one chat."""

    text: str
    by_persona: bool = False
    speaker: str | None = None


def system_prompt(card: PersonaCard) -> str:
    parts = [f"You are {card.name}." + (f" {card.description}" if card.description else "")]
    if card.personality:
        parts.append(f"Personality: {card.personality}")
    if card.scenario:
        parts.append(f"Scenario: {card.scenario}")
    parts.append(f"Reply only as {card.aliases[-1]}, in character.")
    return "\n\n".join(parts)


def chat_messages(card: PersonaCard, turns: list[Turn]) -> list[dict[str, str]]:
    """System message plus alternating user/assistant messages.

    Consecutive lines of the same side are merged (several templates require alternation).
    Lines by other people are labelled `Name: text` so that a multi-user exchange reads naturally;
    once any line in a user message is labelled, all are, the anonymous user as "You".
    """
    messages = [{"role": "system", "content": system_prompt(card)}]
    group: list[Turn] = []

    def flush() -> None:
        if not group:
            return
        if group[0].by_persona:
            messages.append({"role": "assistant", "content": "\n".join(t.text for t in group)})
        else:
            labelled = any(t.speaker for t in group)
            # Labelled, a line of one message that reads `Kanao: I give up` would pass for
            # another speaker's own line: such lines are defused, as in the alpaca transcript.
            lines = [f"{t.speaker or DEFAULT_USER_LABEL}: {defuse_lines(t.text)}" if labelled else t.text for t in group]
            messages.append({"role": "user", "content": "\n".join(lines)})
        group.clear()

    for turn in turns:
        if group and group[0].by_persona != turn.by_persona:
            flush()
        group.append(turn if turn.by_persona or not turn.speaker else Turn(turn.text, False, speaker_label(turn.speaker, card)))
    flush()
    return messages


def speaker_label(name: str, card: PersonaCard) -> str:
    """A display name as a speaker label that cannot pass for another speaker: on one line, with
    no colon (`Inosuke: HAH` as a name would open a line of the persona's), and a user who calls
    themself by the persona's name is marked as a user."""
    # Invisible format characters (zero-width spaces and joiners, direction marks) go: in a
    # label they only serve to make `Inosuke\u200b` look like the persona and compare unlike it.
    visible = "".join(c for c in name if unicodedata.category(c) != "Cf")
    label = " ".join(visible.replace(":", " ").split()) or DEFAULT_USER_LABEL
    if unicodedata.normalize("NFKC", label).casefold() in {alias.casefold() for alias in card.aliases}:
        label = f"{label} (user)"
    return label


def special_tokens(tokenizer) -> list[str]:
    """Every control token string the tokenizer would match inside plain text: its special
    tokens (<|im_start|>, <|im_end|>, ...) and the added tokens that look like markup, special
    or not (Qwen2.5's <tool_call> and <|fim_prefix|> are added tokens without the special flag,
    and a tokenizer matches every added token in text). Added tokens that are words or
    whitespace are left alone: breaking them would change what users wrote."""
    added = [t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
             if t.special or any(not (c.isalnum() or c.isspace()) for c in t.content)]
    return sorted(set(tokenizer.all_special_tokens) | set(added), key=len, reverse=True)


def neutralize(text: str, specials: list[str]) -> str:
    """Text that spells a special token (a user typing `<|im_start|>system`) gets a zero-width
    space inside it: it reads the same but can no longer open or close a turn."""
    for token in specials:
        if token in text:
            text = text.replace(token, token[0] + ZERO_WIDTH_SPACE + token[1:])
    return text


def render_chat(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The chat template's text for these messages (the tokenizer owns the template). What
    users and the model wrote cannot imitate the template's control tokens; the system message
    (the persona card) is ours."""
    specials = special_tokens(tokenizer)
    safe = [m if m["role"] == "system" else {**m, "content": neutralize(m["content"], specials)} for m in messages]
    return tokenizer.apply_chat_template(safe, tokenize=False, add_generation_prompt=add_generation_prompt)


def render_alpaca(instruction: str, input: str = "", output: str = "") -> str:
    """The seed's template; the Input block is left out when input is empty."""
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input, output=output)
    return ALPACA_NO_INPUT.format(instruction=instruction, output=output)


def continue_instruction(card: PersonaCard) -> str:
    """The instruction of a multi-turn sample in the seed's Alpaca format."""
    return f"Continue the conversation as {card.aliases[-1]}."


def defuse_lines(text: str, first_line: bool = False) -> str:
    """Later lines of one turn that look like a speaker label (`Inosuke: ...`) or a template
    header (`### Response:`) are prefixed with a zero-width space: they stay in their turn. With
    `first_line` (text that starts a line of the prompt: the instruction) a header on the first
    line is defused too."""
    lines = text.split("\n")
    first = ZERO_WIDTH_SPACE + lines[0] if first_line and lines[0].lstrip().startswith("###") else lines[0]
    return "\n".join([first] + [ZERO_WIDTH_SPACE + l if speaker_line(l) or l.lstrip().startswith("###") else l
                                 for l in lines[1:]])


def transcript(card: PersonaCard, turns: list[Turn]) -> str:
    """Turns as seed-style transcript lines: `You: ...`, `Inosuke: ...`, `Zenitsu: ...`."""
    persona = card.aliases[-1]
    return "\n".join(f"{persona if t.by_persona else speaker_label(t.speaker, card) if t.speaker else DEFAULT_USER_LABEL}: "
                     f"{defuse_lines(t.text)}" for t in turns)


def safe_alpaca(tokenizer, instruction: str, input: str = "", output: str = "") -> str:
    """The Alpaca text with everything users wrote made inert: control tokens spelled out
    (neutralize) and a header opening the instruction defused. Serving renders through here and
    training renders every sample through here, so both see the same text."""
    specials = special_tokens(tokenizer)
    return render_alpaca(defuse_lines(neutralize(instruction, specials), first_line=True), neutralize(input, specials), output)


def generation_prompt(tokenizer, card: PersonaCard, turns: list[Turn], prompt_format: PromptFormat = "chat") -> str:
    """The text the model continues with the persona's next reply, in either format.

    alpaca: a lone question is the instruction (as in the single-turn seed samples); a longer
    conversation is a transcript in the input, and the response starts with the persona's label,
    exactly as the multi-turn seed samples are laid out."""
    if prompt_format == "chat":
        return render_chat(tokenizer, chat_messages(card, turns), add_generation_prompt=True)
    if len(turns) == 1 and not turns[0].by_persona and not turns[0].speaker:
        return safe_alpaca(tokenizer, turns[0].text)
    return safe_alpaca(tokenizer, continue_instruction(card), transcript(card, turns), f"{card.aliases[-1]}: ")


def card_prefix(tokenizer, card: PersonaCard, prompt_format: PromptFormat = "chat") -> str:
    """The text every prompt for this card begins with (the chat format's system message): the
    serving worker computes its keys and values once and starts every request from them. Empty
    for alpaca, whose prompts do not carry the card."""
    if prompt_format != "chat":
        return ""
    head = render_chat(tokenizer, [{"role": "system", "content": system_prompt(card)}])
    probe = generation_prompt(tokenizer, card, [Turn("x")], prompt_format)
    return head if probe.startswith(head) else ""  # a template that renders the system message otherwise: no sharing
