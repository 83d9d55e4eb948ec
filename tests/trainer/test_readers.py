"""Every input format ingested into rows tagged with source and the line they start on."""

import json
from pathlib import Path

from core.persona import load_card
from trainer.dataset.readers import read_source


def origins(rows):
    return [(Path(r.origin.file).name, r.origin.line, r.source) for r in rows]


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path, persona):
    path = tmp_path / "quotes.jsonl"
    path.write_text('{"instruction": "a", "output": "A!"}\n\n{"instruction": "b", "input": "x", "output": "B!"}\n')
    rows, problems = read_source(path, persona)
    assert problems == []
    assert origins(rows) == [("quotes.jsonl", 1, "quotes"), ("quotes.jsonl", 3, "quotes")]
    assert rows[1].data == {"instruction": "b", "input": "x", "output": "B!"}


def test_json_array_rows_carry_the_line_they_start_on(tmp_path, persona):
    path = tmp_path / "extra.json"
    path.write_text('[\n  {"instruction": "a",\n   "output": "A!"},\n  {"instruction": "b", "output": "B!"}\n]\n')
    rows, problems = read_source(path, persona)
    assert problems == [] and origins(rows) == [("extra.json", 2, "extra"), ("extra.json", 4, "extra")]


def test_csv_with_multiline_field(tmp_path, persona):
    path = tmp_path / "sheet.csv"
    path.write_text('instruction,input,output\nGreet,,HAH!\n"Two\nlines",,"Yes"\nLast,,Done\n')
    rows, problems = read_source(path, persona)
    assert problems == []
    assert origins(rows) == [("sheet.csv", 2, "sheet"), ("sheet.csv", 3, "sheet"), ("sheet.csv", 5, "sheet")]
    assert rows[1].data == {"instruction": "Two\nlines", "input": "", "output": "Yes"}


def test_plain_text_one_quote_a_line(tmp_path, persona):
    path = tmp_path / "lines.txt"
    path.write_text("# battle cries\nPIG ASSAULT!\n\nFight me!\n")
    rows, _ = read_source(path, persona)
    assert origins(rows) == [("lines.txt", 2, "lines"), ("lines.txt", 4, "lines")]
    assert rows[0].data == {"instruction": "Say something in character, Inosuke Hashibira!", "input": "", "output": "PIG ASSAULT!"}


def test_card_json_and_png_dialogues_become_conversation_samples(tmp_path, small_card, write_png_card):
    json_card = tmp_path / "rengoku.json"
    json_card.write_text(json.dumps(small_card, indent=2))
    png_card = tmp_path / "rengoku_png.png"
    write_png_card(png_card, small_card)
    persona = load_card(json_card)  # building Rengoku's dataset
    for path in (json_card, png_card):
        rows, problems = read_source(path, persona)
        assert problems == []
        assert [r.data for r in rows] == [
            {"instruction": "Continue the conversation as Rengoku.", "input": "You: Hungry?", "output": "Rengoku Kyojuro: Always!"},
            {"instruction": "Continue the conversation as Rengoku.", "input": "You: Fight?", "output": "Rengoku Kyojuro: Set your heart ablaze!"},
        ]
        assert {r.source for r in rows} == {path.stem}
    # A JSON card points at its mes_example line.
    line = json_card.read_text().splitlines().index(next(l for l in json_card.read_text().splitlines() if '"mes_example"' in l)) + 1
    assert read_source(json_card, persona)[0][0].origin.line == line


def test_a_card_of_another_character_is_a_problem_not_samples(tmp_path, persona, small_card, write_png_card):
    """Rengoku's card left in Inosuke's data folder would teach Inosuke to answer as Rengoku."""
    json_card = tmp_path / "rengoku.json"
    json_card.write_text(json.dumps(small_card))
    png_card = tmp_path / "rengoku.png"
    write_png_card(png_card, small_card)
    for path in (json_card, png_card):
        rows, problems = read_source(path, persona)
        assert rows == [] and [(p.field, p.reason.split(":")[0]) for p in problems] == [
            ("card", "a card of Rengoku Kyojuro, not of Inosuke Hashibira")]


def test_the_projects_card_yields_its_dialogues(persona):
    rows, problems = read_source(Path(persona.path), persona)
    assert problems == [] and len(rows) == len(persona.example_dialogues())
    assert all(r.data["output"].startswith("Inosuke Hashibira: ") for r in rows)


def test_a_number_too_long_for_python_and_a_damaged_card_png_are_problem_rows(tmp_path, persona):
    """One hostile row or file is set aside (a Problem naming it), never a crash of the whole build."""
    huge = "1" * 5000  # over Python's 4300-digit limit: ValueError, not JSONDecodeError
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"instruction": "q", "output": "A!"}\n{"instruction": "q", "output": "B!", "id": ' + huge + "}\n")
    rows, problems = read_source(jsonl, persona)
    assert len(rows) == 1 and [(str(p.origin), p.field) for p in problems] == [(f"{jsonl}:2", "json")]
    assert problems[0].reason.startswith("invalid JSON (Exceeds the limit (4300 digits)")
    array = tmp_path / "rows.json"
    array.write_text('[{"instruction": "q", "output": "A!", "id": ' + huge + "}]")
    rows, problems = read_source(array, persona)
    assert rows == [] and [(str(p.origin), p.field) for p in problems] == [(f"{array}:1", "json")]

    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    card = tmp_path / "extra_card.png"  # an iTXt chunk that ends after its keyword
    card.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"iTXt", b"chara") + chunk(b"IEND", b""))
    rows, problems = read_source(card, persona)
    assert rows == [] and [(str(p.origin), p.field, p.reason) for p in problems] == [
        (f"{card}:1", "card", "chara: a damaged iTXt chunk (it ends after its keyword)")]
