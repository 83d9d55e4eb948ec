"""An Ollama Modelfile whose TEMPLATE renders exactly what our prompt builder renders.

The TEMPLATE is derived from the model's own chat template (through core/prompt.py, the one
builder) by rendering marker messages and cutting out what wraps each role; it is then checked
by rendering a multi-turn, multi-user conversation with the Go-template evaluator here and
comparing with the builder, and refused with one line when it differs (a template whose output
depends on more than the role, e.g. on the position of a message, cannot be expressed this way).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserError
from core.persona import PersonaCard
from core.prompt import Turn, chat_messages, render_chat, system_prompt
from trainer.export import go_template

MARK = {"system": "\x01SYSTEM\x01", "user": "\x01USER\x01", "assistant": "\x01ASSISTANT\x01"}
# A conversation that exercises what the bot sends: several users, lines merged per side, and text
# with newlines, quotes and braces that must pass through unchanged.
CHECK_TURNS = [
    Turn("Hey, who are you?"),
    Turn("I'm Inosuke Hashibira! Remember it!", by_persona=True),
    Turn("Zenitsu says \"{{ hi }}\"\nand waves", speaker="Zenitsu"),
    Turn("Me too!", speaker="Tanjiro"),
    Turn("HAH! Fight me, both of you!", by_persona=True),
    Turn("Fine. Where is the Demon?"),
]


@dataclass(frozen=True)
class Decoding:
    """Our bot's decoding (config/bot.yaml `decoding:`), in Ollama's PARAMETER names."""
    max_new_tokens: int
    repetition_penalty: float
    temperature: float = 0.0
    top_p: float = 1.0
    min_p: float = 0.0


def _split(text: str, mark: str, where: str) -> tuple[str, str]:
    if text.count(mark) != 1:
        raise UserError(f"{where}: the chat template does not place each message's content once; "
                        "it cannot be expressed as an Ollama TEMPLATE")
    before, after = text.split(mark)
    return before, after


def _render(tokenizer, messages: list[dict[str, str]], generation: bool = False) -> str:
    return render_chat(tokenizer, messages, add_generation_prompt=generation)


def derive_template(tokenizer, where: str) -> str:
    """The Go TEMPLATE equivalent of the tokenizer's chat template for system/user/assistant turns."""
    system = {"role": "system", "content": MARK["system"]}
    user = {"role": "user", "content": MARK["user"]}
    assistant = {"role": "assistant", "content": MARK["assistant"]}
    only_system = _render(tokenizer, [system])
    sys_prefix, sys_suffix = _split(only_system, MARK["system"], where)
    with_user = _render(tokenizer, [system, user])
    if not with_user.startswith(only_system):
        raise UserError(f"{where}: the chat template renders the system message differently once a user message follows; "
                        "it cannot be expressed as an Ollama TEMPLATE")
    user_prefix, user_suffix = _split(with_user[len(only_system):], MARK["user"], where)
    with_assistant = _render(tokenizer, [system, user, assistant])
    if not with_assistant.startswith(with_user):
        raise UserError(f"{where}: the chat template changes earlier turns when an assistant turn follows; "
                        "it cannot be expressed as an Ollama TEMPLATE")
    assistant_prefix, assistant_suffix = _split(with_assistant[len(with_user):], MARK["assistant"], where)
    generation = _render(tokenizer, [system, user], generation=True)[len(with_user):]
    pieces = [sys_prefix, sys_suffix, user_prefix, user_suffix, assistant_prefix, assistant_suffix, generation]
    if any("{{" in p or "}}" in p for p in pieces):
        raise UserError(f"{where}: the chat template's own text contains '{{{{' or '}}}}'; not supported in a TEMPLATE")
    # No whitespace trimming ({{- -}}): the wrappers' newlines are part of the format.
    return ("{{ if .System }}" + sys_prefix + "{{ .System }}" + sys_suffix + "{{ end }}"
            "{{ range .Messages }}"
            '{{ if eq .Role "user" }}' + user_prefix + "{{ .Content }}" + user_suffix +
            '{{ else if eq .Role "assistant" }}' + assistant_prefix + "{{ .Content }}" + assistant_suffix +
            "{{ end }}{{ end }}" + generation)


def ollama_values(messages: list[dict[str, str]]) -> dict:
    """What Ollama hands its template for a chat request: .System (the system messages) and
    .Messages (every message, system ones included, as Ollama does; our template skips them)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return {"System": system, "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}


def check_template(template: str, tokenizer, card: PersonaCard, where: str) -> None:
    messages = chat_messages(card, CHECK_TURNS)
    ours = render_chat(tokenizer, messages, add_generation_prompt=True)
    theirs = go_template.render(template, ollama_values(messages))
    if ours != theirs:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise UserError(f"{where}: the derived Ollama TEMPLATE differs from the prompt builder at character {at} "
                        f"({ours[at:at + 20]!r} vs {theirs[at:at + 20]!r}); not exported")


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise UserError(f"{what} contains '\"\"\"', which a Modelfile cannot quote")
    return f'"""{text}"""'


def modelfile(*, source: str, adapter: str | None, template: str, card: PersonaCard, stop: str,
              decoding: Decoding, header: str) -> str:
    """The Modelfile text: FROM (and ADAPTER), TEMPLATE, SYSTEM (the persona), stop token, decoding."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"FROM {source}")
    if adapter:
        lines.append(f"ADAPTER {adapter}")
    lines.append(f"TEMPLATE {_quoted(template, 'the chat template')}")
    lines.append(f"SYSTEM {_quoted(system_prompt(card), f'{card.path}: the persona card')}")
    lines.append(f"PARAMETER stop {stop!r}".replace("'", '"') if '"' not in stop else f"PARAMETER stop {stop}")
    # The bot's decoding, with the repetition penalty over the whole context (repeat_last_n -1):
    # ollama, on llama.cpp, has no reply-only penalty (core/decoding.py: repetition_scope).
    lines += [f"PARAMETER temperature {decoding.temperature:g}", f"PARAMETER top_p {decoding.top_p:g}",
              f"PARAMETER min_p {decoding.min_p:g}", f"PARAMETER repeat_penalty {decoding.repetition_penalty}",
              "PARAMETER repeat_last_n -1", f"PARAMETER num_predict {decoding.max_new_tokens}"]
    return "\n".join(lines) + "\n"
