"""The persona card: everything the bot knows about "who am I".

A SillyTavern character card (V2 `chara_card_v2`, V3 `chara_card_v3` or flat V1), as JSON or as
a PNG carrying the JSON base64-encoded in its `chara` (or `ccv3`) text chunk.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.files import json_error_reason

CARD_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
# SillyTavern's placeholders inside card text.
USER_PLACEHOLDER = re.compile(r"\{\{user\}\}|<USER>", re.IGNORECASE)
CHAR_PLACEHOLDER = re.compile(r"\{\{char\}\}|<BOT>", re.IGNORECASE)
DIALOGUE_SEPARATOR = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)
DEFAULT_USER_LABEL = "You"


@dataclass(frozen=True)
class PersonaCard:
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    path: str = ""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Names the persona goes by in transcripts: the full name and the first name."""
        first = self.name.split()[0]
        return (self.name,) if first == self.name else (self.name, first)

    def fill(self, text: str) -> str:
        """Replace {{char}} / {{user}} placeholders with the persona's name and the user label."""
        text = CHAR_PLACEHOLDER.sub(self.name, text)
        return USER_PLACEHOLDER.sub(DEFAULT_USER_LABEL, text)

    def example_dialogues(self) -> list[str]:
        """The card's mes_example split on <START> into transcripts with names filled in."""
        parts = DIALOGUE_SEPARATOR.split(self.mes_example.replace("\r\n", "\n"))
        return [self.fill(p).strip() for p in parts if p.strip()]


def card_from_dict(raw: object, path: str) -> PersonaCard:
    """Validate a parsed card (V1 flat, or V2/V3 with a `data` object) and build a PersonaCard."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: card: expected a JSON object, got {type(raw).__name__}")
    data = raw.get("data") if isinstance(raw.get("data"), dict) else raw
    spec = raw.get("spec")
    if spec is not None and spec not in ("chara_card_v2", "chara_card_v3"):
        raise UserError(f"{path}: spec: unsupported card spec {spec!r} (expected chara_card_v2)")
    values = {}
    for field in CARD_FIELDS:
        value = data.get(field, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise UserError(f"{path}: {field}: expected text, got {type(value).__name__}")
        values[field] = value.strip()
    if not values["name"]:
        raise UserError(f"{path}: name: the card has no name")
    return PersonaCard(path=path, **values)


# A card's text (base64 JSON) may hold a lorebook, but not more than this once inflated: a zTXt
# chunk can inflate a few kilobytes into gigabytes.
MAX_CARD_TEXT = 16 * 2**20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_text_chunks(path: Path) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG, read chunk by chunk without decoding a single
    pixel: a 20000x20000 card image costs nothing, and no chunk may inflate past MAX_CARD_TEXT."""
    import struct
    import zlib

    def inflate(data: bytes, what: str) -> bytes:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, MAX_CARD_TEXT + 1)
        except zlib.error as exc:
            raise UserError(f"{path}: {what}: a damaged compressed text chunk ({exc})") from None
        if len(out) > MAX_CARD_TEXT:
            raise UserError(f"{path}: {what}: the text chunk inflates past {MAX_CARD_TEXT // 2**20} MiB; not a character card")
        return out

    texts: dict[str, str] = {}
    with path.open("rb") as png:
        if png.read(8) != PNG_SIGNATURE:
            raise UserError(f"{path}: png: not a readable PNG image (no PNG signature)")
        while header := png.read(8):
            if len(header) < 8:
                raise UserError(f"{path}: png: the file ends in the middle of a chunk")
            length, kind = struct.unpack(">I4s", header)
            if kind in (b"tEXt", b"zTXt", b"iTXt"):
                if length > MAX_CARD_TEXT:
                    raise UserError(f"{path}: png: a text chunk of {length:,} bytes, over {MAX_CARD_TEXT // 2**20} MiB")
                data = png.read(length)
                keyword, _, rest = data.partition(b"\0")
                key = keyword.decode("latin-1")
                if kind == b"tEXt":
                    value = rest
                elif kind == b"zTXt":
                    value = inflate(rest[1:], key)
                else:  # iTXt: compressed flag, method, language tag, translated keyword, text
                    if len(rest) < 2:
                        raise UserError(f"{path}: {key}: a damaged iTXt chunk (it ends after its keyword)")
                    compressed, rest = rest[0], rest[2:]
                    _, _, rest = rest.partition(b"\0")
                    _, _, value = rest.partition(b"\0")
                    value = inflate(value, key) if compressed else value
                texts.setdefault(key, value.decode("latin-1" if kind != b"iTXt" else "utf-8", errors="replace"))
                png.seek(4, 1)  # CRC
            else:
                png.seek(length + 4, 1)  # pixels and everything else: skipped, never decoded
            if kind == b"IEND":
                break
    return texts


def parse_json(text: str, path: Path, what: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: {what}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: {what}: JSON nested too deeply") from None
    except ValueError as exc:  # not a JSONDecodeError: an integer of more digits than Python converts
        raise UserError(f"{path}: {what}: invalid JSON ({json_error_reason(exc)})") from None


def read_card_json(path: Path) -> object:
    """The card's raw JSON from a .json file or a PNG's `chara`/`ccv3` chunk."""
    if path.suffix.lower() == ".png":
        try:
            chunks = png_text_chunks(path)
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
        except OSError as exc:
            raise UserError(f"{path}: png: not a readable PNG image ({exc})") from None
        encoded = chunks.get("chara") or chunks.get("ccv3")
        if not encoded:
            raise UserError(f"{path}: chara: the PNG carries no character card (no 'chara' text chunk)")
        try:
            text = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{path}: chara: the 'chara' chunk is not base64-encoded UTF-8 JSON") from None
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: card: not UTF-8 text ({exc.reason})") from None
    return parse_json(text, path, "card")


def load_card(path: str | Path) -> PersonaCard:
    path = Path(path)
    return card_from_dict(read_card_json(path), str(path))


def is_card(raw: object) -> bool:
    """Whether parsed JSON looks like a character card rather than a list of samples."""
    if not isinstance(raw, dict):
        return False
    if raw.get("spec") in ("chara_card_v2", "chara_card_v3"):
        return True
    return "name" in raw and ("mes_example" in raw or "first_mes" in raw)
