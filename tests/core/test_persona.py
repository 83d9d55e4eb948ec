import json

from PIL import Image

import pytest

from core.errors import UserError
from core.persona import load_card


def test_the_projects_card_is_inosuke(persona):
    assert persona.name == "Inosuke Hashibira"
    assert persona.aliases == ("Inosuke Hashibira", "Inosuke")
    assert persona.description and persona.personality and persona.first_mes
    assert len(persona.example_dialogues()) >= 3


def test_v2_json_card_with_placeholders_filled(tmp_path, small_card):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(small_card))
    card = load_card(path)
    assert card.name == "Rengoku Kyojuro" and card.first_mes == "UMAI!"
    assert card.example_dialogues() == [
        "You: Hungry?\nRengoku Kyojuro: Always!",
        "You: Fight?\nRengoku Kyojuro: Set your heart ablaze!",
    ]


def test_v1_flat_card(tmp_path, small_card):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(small_card["data"]))
    assert load_card(path).description == "The Flame Hashira."


@pytest.mark.parametrize("key", ["chara", "ccv3"])
def test_png_card(tmp_path, key, small_card, write_png_card):
    path = tmp_path / "card.png"
    write_png_card(path, small_card, key)
    assert load_card(path).name == "Rengoku Kyojuro"


@pytest.mark.parametrize(
    "card, message",
    [
        ({"spec": "chara_card_v2", "data": {"name": ""}}, "name: the card has no name"),
        ({"spec": "chara_card_v9", "data": {"name": "X"}}, "spec: unsupported card spec 'chara_card_v9' (expected chara_card_v2)"),
        ({"spec": "chara_card_v2", "data": {"name": "X", "personality": 3}}, "personality: expected text, got int"),
        ([1, 2], "card: expected a JSON object, got list"),
    ],
)
def test_bad_cards_name_file_and_field(tmp_path, card, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(card))
    with pytest.raises(UserError) as error:
        load_card(path)
    assert str(error.value) == f"{path}: {message}"


def test_png_without_card_and_broken_json(tmp_path):
    png = tmp_path / "plain.png"
    Image.new("RGB", (2, 2)).save(png)
    with pytest.raises(UserError, match="no character card"):
        load_card(png)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "name": "X",\n  oops\n}')
    with pytest.raises(UserError, match=r"broken.json:3: card: invalid JSON"):
        load_card(broken)


def png_with_text(path, kind: bytes, data: bytes) -> None:
    import struct
    import zlib

    def chunk(name: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(kind, data) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data", [b"chara", b"chara\0", b"chara\0\0"])
def test_a_damaged_itxt_chunk_is_a_one_line_error(tmp_path, data):
    path = tmp_path / "itxt.png"
    png_with_text(path, b"iTXt", data)  # the keyword and nothing (or too little) after it
    with pytest.raises(UserError) as error:
        load_card(path)
    assert str(error.value) == f"{path}: chara: a damaged iTXt chunk (it ends after its keyword)"


def test_a_number_too_long_for_python_is_a_one_line_error(tmp_path, small_card):
    import base64

    text = json.dumps({**small_card, "id": 0}).replace('"id": 0', '"id": ' + "1" * 5000)  # over Python's 4300 digits
    as_json, as_png = tmp_path / "card.json", tmp_path / "card.png"
    as_json.write_text(text)
    png_with_text(as_png, b"tEXt", b"chara\0" + base64.b64encode(text.encode()))
    for path in (as_json, as_png):
        with pytest.raises(UserError) as error:
            load_card(path)
        assert str(error.value).startswith(f"{path}: card: invalid JSON (Exceeds the limit (4300 digits)")
        assert "\n" not in str(error.value)
