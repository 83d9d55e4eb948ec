"""A tiny evaluator for the subset of Go's text/template that our Ollama TEMPLATE uses, so that
the exported template can be checked against the prompt builder here, without Go or Ollama.

Supported: text, `{{ .Field }}`, `{{ if COND }}`, `{{ else if COND }}`, `{{ else }}`, `{{ end }}`,
`{{ range .Field }}` (the dot becomes each element), with `{{-` / `-}}` trimming the whitespace
beside them as Go does; COND is `.Field` (non-empty) or `eq|ne .Field "literal"`. Anything else is
an error, never a guess.
"""

from __future__ import annotations

import re
from typing import Any

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
FIELD = re.compile(r"^\.([A-Za-z_]\w*)$")
COMPARE = re.compile(r'^(eq|ne)\s+\.([A-Za-z_]\w*)\s+"((?:[^"\\]|\\.)*)"$')


class TemplateError(ValueError):
    pass


def parse(template: str) -> list:
    """Nodes: str | ("field", name) | ("if", [(cond, body), ...], else_body) | ("range", name, body)."""
    pieces: list = []
    pos = 0
    for match in ACTION.finditer(template):
        text = template[pos:match.start()]
        if match.group(1):
            text = text.rstrip()
        if pieces and isinstance(pieces[-1], tuple) and pieces[-1][0] == "trim_right":
            pieces.pop()
            text = text.lstrip()
        pieces.append(text)
        pieces.append(("action", match.group(2).strip()))
        if match.group(3):
            pieces.append(("trim_right",))
        pos = match.end()
    tail = template[pos:]
    if pieces and isinstance(pieces[-1], tuple) and pieces[-1][0] == "trim_right":
        pieces.pop()
        tail = tail.lstrip()
    pieces.append(tail)
    nodes, rest = _block(pieces, 0, top=True)
    return nodes


def _block(pieces: list, i: int, top: bool = False) -> tuple[list, int]:
    nodes: list = []
    while i < len(pieces):
        piece = pieces[i]
        if isinstance(piece, str):
            if piece:
                nodes.append(piece)
            i += 1
            continue
        action = piece[1]
        if action == "end" or action == "else" or action.startswith("else if "):
            if top:
                raise TemplateError(f"unexpected {{{{ {action} }}}}")
            return nodes, i
        if action.startswith("if "):
            branches, otherwise = [], []
            cond = _condition(action[3:].strip())
            while True:
                body, i = _block(pieces, i + 1)
                branches.append((cond, body))
                if i >= len(pieces):
                    raise TemplateError("{{ if }} without {{ end }}")
                closing = pieces[i][1]
                if closing.startswith("else if "):
                    cond = _condition(closing[8:].strip())
                    continue
                if closing == "else":
                    otherwise, i = _block(pieces, i + 1)
                    if i >= len(pieces) or pieces[i][1] != "end":
                        raise TemplateError("{{ else }} without {{ end }}")
                break
            nodes.append(("if", branches, otherwise))
            i += 1
        elif action.startswith("range "):
            field = FIELD.match(action[6:].strip())
            if not field:
                raise TemplateError(f"unsupported range {action!r}")
            body, i = _block(pieces, i + 1)
            if i >= len(pieces) or pieces[i][1] != "end":
                raise TemplateError("{{ range }} without {{ end }}")
            nodes.append(("range", field.group(1), body))
            i += 1
        elif FIELD.match(action):
            nodes.append(("field", FIELD.match(action).group(1)))
            i += 1
        else:
            raise TemplateError(f"unsupported action {{{{ {action} }}}}")
    if not top:
        raise TemplateError("missing {{ end }}")
    return nodes, i


def _condition(text: str) -> tuple:
    if FIELD.match(text):
        return ("truthy", FIELD.match(text).group(1))
    compare = COMPARE.match(text)
    if compare:
        return (compare.group(1), compare.group(2), compare.group(3).encode().decode("unicode_escape"))
    raise TemplateError(f"unsupported condition {text!r}")


def _get(dot: Any, name: str) -> Any:
    value = dot.get(name) if isinstance(dot, dict) else getattr(dot, name, None)
    if value is None:
        raise TemplateError(f"no field .{name}")
    return value


def _holds(cond: tuple, dot: Any) -> bool:
    if cond[0] == "truthy":
        return bool(dot.get(cond[1]) if isinstance(dot, dict) else getattr(dot, cond[1], None))
    equal = _get(dot, cond[1]) == cond[2]
    return equal if cond[0] == "eq" else not equal


def _render(nodes: list, dot: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "field":
            out.append(str(_get(dot, node[1])))
        elif node[0] == "if":
            for cond, body in node[1]:
                if _holds(cond, dot):
                    _render(body, dot, out)
                    break
            else:
                _render(node[2], dot, out)
        elif node[0] == "range":
            for item in _get(dot, node[1]):
                _render(node[2], item, out)


def render(template: str, values: dict) -> str:
    """The template's text for `values` (e.g. {"System": ..., "Messages": [{"Role", "Content"}]})."""
    out: list[str] = []
    _render(parse(template), values, out)
    return "".join(out)
