"""The persona as a SillyTavern V2 character card PNG (the `chara` tEXt chunk holds the card JSON,
base64-encoded), so that the character travels with the model. core/persona.py reads it back."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from core.persona import CARD_FIELDS, PersonaCard, read_card_json

MAX_PICTURE_PIXELS = 4096 * 4096  # a card picture is a portrait: SillyTavern's are 400x600 to 1024x1536
log = logging.getLogger(__name__)


def card_v2(card: PersonaCard, source: Path, version: str) -> dict:
    """The trained-with card as V2 JSON: a V2 source is kept whole (extensions, greetings...), a
    V1 or V3 card is carried over field by field."""
    raw = read_card_json(source)
    if isinstance(raw, dict) and raw.get("spec") == "chara_card_v2" and isinstance(raw.get("data"), dict):
        data = dict(raw["data"])
    else:
        data = {field: getattr(card, field) for field in CARD_FIELDS}
    for key, default in (("creator_notes", ""), ("system_prompt", ""), ("post_history_instructions", ""),
                         ("alternate_greetings", []), ("tags", []), ("creator", ""), ("extensions", {})):
        data.setdefault(key, default)
    data["character_version"] = data.get("character_version") or version
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def write_card_png(card: PersonaCard, source: Path, version: str, out: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    picture = card_picture(source) or plain_portrait(card)
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card_v2(card, source, version), ensure_ascii=False).encode()).decode())
    picture.save(out, pnginfo=info)


def card_picture(source: Path):
    """The source card's own picture, or None (the plain portrait is used) when PIL cannot read
    it: the card reader never decodes pixels, so it accepts PNGs that PIL refuses (no IHDR) or
    that are too big to decode (30000x30000 pixels in a 100 KB file). The size is checked
    before any pixel is decoded."""
    from PIL import Image

    if source.suffix.lower() != ".png":
        return None
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_PICTURE_PIXELS:
                log.warning("%s: a %dx%d picture is too big to carry over; the exported card gets a plain portrait",
                            source, image.width, image.height)
                return None
            return image.convert("RGBA")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # OSError: UnidentifiedImageError too
        log.warning("%s: its picture is unreadable (%s); the exported card gets a plain portrait", source, exc)
        return None


def plain_portrait(card: PersonaCard):
    """A plain portrait card with the name, as SillyTavern shows it in the character list."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGBA", (400, 600), (40, 52, 80, 255))
    ImageDraw.Draw(picture).text((24, 540), card.name, fill=(255, 255, 255, 255))
    return picture
