"""Ingest sample files of every supported format into RawRows tagged with their source.

Formats: JSONL (one object a line), JSON (an array of objects), CSV (instruction,input,output
header), plain text (one quote a line; # comments), and SillyTavern character cards (JSON or PNG)
whose mes_example dialogues become conversation samples. Unreadable rows become Problems, never
silently dropped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.errors import UserError
from core.files import json_error_reason, json_lines
from core.persona import PersonaCard, card_from_dict, is_card, read_card_json
from core.prompt import continue_instruction
from trainer.dataset.records import Origin, Problem, RawRow
from core.transcript_labels import speaker_line

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".png")


def quote_instruction(persona: PersonaCard) -> str:
    """The instruction given to a bare quote from a text file."""
    return f"Say something in character, {persona.name}!"


def read_source(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    """Rows and unreadable-row problems of one file; its source tag is the file's stem."""
    suffix = path.suffix.lower()
    readers = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".txt": read_text, ".png": read_card_file}
    if suffix not in readers:
        raise UserError(f"{path}: unsupported file type {suffix!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        return readers[suffix](path, persona)
    except UnicodeDecodeError as exc:
        # The line the bad bytes are on (not line 1): count the newlines before them.
        line = path.read_bytes()[: exc.start].count(b"\n") + 1 if isinstance(exc.object, bytes) else 1
        return [], [Problem(Origin(str(path), line), "file", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]


def read_jsonl(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    rows, problems = [], []
    text = path.read_text(encoding="utf-8-sig")
    for number, line in json_lines(text):
        origin = Origin(str(path), number)
        try:
            rows.append(RawRow(json.loads(line), origin, path.stem))
        except json.JSONDecodeError as exc:
            problems.append(Problem(origin, "json", f"invalid JSON ({exc.msg} at column {exc.colno})"))
        except RecursionError:
            problems.append(Problem(origin, "json", "nested too deeply"))
        except ValueError as exc:
            problems.append(Problem(origin, "json", f"invalid JSON ({json_error_reason(exc)})"))
    return rows, problems


def read_json(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    """An array of sample objects, each tagged with the line it starts on; or a character card."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Problem(Origin(str(path), exc.lineno), "json", f"invalid JSON ({exc.msg} at column {exc.colno})")]
    except RecursionError:
        return [], [Problem(Origin(str(path), 1), "json", "nested too deeply")]
    except ValueError as exc:
        return [], [Problem(Origin(str(path), 1), "json", f"invalid JSON ({json_error_reason(exc)})")]
    if is_card(parsed):
        return card_rows(parsed, path, text, persona)
    if not isinstance(parsed, list):
        return [], [Problem(Origin(str(path), 1), "json", "expected an array of samples or a character card")]
    # Re-walk the array with raw_decode to learn the line each element starts on.
    decoder, rows = json.JSONDecoder(), []
    position = text.index("[") + 1
    for item in parsed:
        while text[position] in " \t\r\n,":
            position += 1
        _, end = decoder.raw_decode(text, position)
        rows.append(RawRow(item, Origin(str(path), text.count("\n", 0, position) + 1), path.stem))
        position = end
    return rows, []


def read_csv(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            return [], [Problem(Origin(str(path), 1), "header", str(exc))]
        missing = [name for name in ("instruction", "output") if name not in header]
        if missing:
            return [], [Problem(Origin(str(path), 1), "header", f"missing column(s) {', '.join(missing)} (found {header})")]
        rows, problems = [], []
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a field over the csv module's limit, a NUL byte, ...
                problems.append(Problem(Origin(str(path), start), "csv", f"{exc}; the rows after it were not read"))
                break  # the reader cannot find where the next row starts
            origin = Origin(str(path), start)
            start = reader.line_num + 1  # a quoted field may span lines: the next row starts after this one
            if None in row:
                problems.append(Problem(origin, "csv", f"{len(header) + len(row[None])} fields, the header has {len(header)}"))
                continue
            rows.append(RawRow({k: v for k, v in row.items() if k is not None}, origin, path.stem))
    return rows, problems


def read_text(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    rows = []
    instruction = quote_instruction(persona)
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1):
        line = line.strip()  # a line ends at "\n" only: a quote may hold U+2028 and the like
        if line and not line.startswith("#"):
            rows.append(RawRow({"instruction": instruction, "input": "", "output": line}, Origin(str(path), number), path.stem))
    return rows, []


def read_card_file(path: Path, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    try:
        raw = read_card_json(path)
    except UserError as exc:
        return [], [Problem(Origin(str(path), 1), "card", str(exc).split(": ", 1)[-1])]
    return card_rows(raw, path, None, persona)


def card_rows(raw: object, path: Path, text: str | None, persona: PersonaCard) -> tuple[list[RawRow], list[Problem]]:
    """Each mes_example dialogue becomes one conversation sample: the transcript up to the card
    character's last line is the input, that last line the output. A card of another character
    is a problem: its dialogues would teach the persona to answer as someone else."""
    try:
        card = card_from_dict(raw, str(path))
    except UserError as exc:
        return [], [Problem(Origin(str(path), 1), "card", str(exc).split(": ", 2)[-1])]
    if card.name.casefold() != persona.name.casefold():
        return [], [Problem(Origin(str(path), 1), "card",
                            f"a card of {card.name}, not of {persona.name}: its dialogues would train {persona.name} "
                            f"to answer as {card.name} (build with --card {path.name} for that character)")]
    # JSON cards: point at the mes_example field's line; PNG cards have no lines to point at.
    line = text[: text.find('"mes_example"')].count("\n") + 1 if text and '"mes_example"' in text else 1
    rows, problems = [], []
    for index, dialogue in enumerate(card.example_dialogues(), start=1):
        lines = dialogue.split("\n")
        origin = Origin(str(path), line)
        last = max((i for i, l in enumerate(lines) if (s := speaker_line(l)) and s[0] in card.aliases), default=None)
        if last is None:
            problems.append(Problem(origin, "mes_example", f"dialogue {index} has no line by {card.name}"))
            continue
        sample = {
            "instruction": continue_instruction(card),
            "input": "\n".join(lines[:last]).strip(),
            "output": "\n".join(lines[last:]).strip(),
        }
        rows.append(RawRow(sample, origin, path.stem))
    return rows, problems
