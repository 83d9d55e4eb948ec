"""Files written whole or not at all, and JSON Lines read as JSON Lines.

- write_atomic: the text goes to a temporary file beside the target, is flushed to disk, and is
  renamed over the target, so a reader (or a crash) sees the old file or the new one, never half.
- JSON Lines are split on "\\n" only: str.splitlines() also splits on U+2028, U+2029, U+0085 and
  other characters that JSON allows raw inside a string, which would cut a valid row in two. The
  writer escapes those three too (`\\u2028`), so that no other tool reading our files (an editor,
  a `splitlines()` script, JavaScript) can cut a row either.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: object) -> None:
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# Line separators that JSON leaves raw inside strings; escaped, they cannot end a line anywhere.
LINE_SEPARATORS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def json_line(row: object) -> str:
    """One row as one line of JSON, whatever text it holds."""
    text = json.dumps(row, ensure_ascii=False)
    for raw, escaped in LINE_SEPARATORS.items():
        text = text.replace(raw, escaped)  # only ever inside a string: JSON has no raw text elsewhere
    return text


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json_line(row) + "\n" for row in rows))


def json_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every non-blank line, split on "\\n" only."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line.rstrip("\r")


def json_error_reason(exc: Exception) -> str:
    """Why json.loads failed, in one line, when it was not a JSONDecodeError: an integer of more
    digits than Python converts (4,300; one hostile row could stop a whole build with it), or
    nesting too deep for the parser."""
    return str(exc).split(";")[0] or type(exc).__name__


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for _, line in json_lines(path.read_text(encoding="utf-8"))]
