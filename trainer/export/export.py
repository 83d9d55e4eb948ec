"""`python -m trainer export`: an adapter version out of the project, in the formats asked for.

Output under state/exports/<version>/ (or --out):
  merged/                      base + adapter merged in full precision (HF folder)
  <name>-<version>.f16.gguf    the merged model in GGUF (llama.cpp's converter), chat template inside
  <name>-<version>.Q4_K_M.gguf the same, quantized by llama-quantize
  <name>-<version>.lora.gguf   the adapter alone as a llama.cpp LoRA (for --lora / Ollama's ADAPTER)
  Modelfile                    Ollama: FROM the Q4_K_M GGUF, TEMPLATE, SYSTEM, stop token, decoding
  Modelfile.lora               Ollama: FROM the base's GGUF + ADAPTER (the embedded base only)
  <name>.card.png              the persona card it was trained with (SillyTavern V2)
  README.md                    what each file is for and how to run it
Each file appears whole or not at all (written under a temporary name, then renamed).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.paths import exports_dir, project_path
from core.persona import PersonaCard, load_card
from core.registry import AdapterInfo, find_adapter, read_adapter

FORMATS = ("merged", "gguf", "lora-gguf", "ollama", "card")
# What a format needs made first: the GGUF is converted from the merged folder, the Modelfile
# points at the quantized GGUF.
NEEDS = {"gguf": ("merged",), "ollama": ("merged", "gguf")}
QUANT = "Q4_K_M"
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, list[Path]] = field(default_factory=dict)


def parse_formats(text: str) -> list[str]:
    asked = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in asked if f not in FORMATS]
    if unknown or not asked:
        raise UserError(f"--format: unknown format {', '.join(unknown) or '(none)'!s}; choose from {', '.join(FORMATS)} (comma-separated)")
    return asked


def plan(formats: list[str]) -> list[str]:
    """The formats to make, in order, with what they need."""
    wanted = set(formats)
    for f in formats:
        wanted.update(NEEDS.get(f, ()))
    return [f for f in FORMATS if f in wanted]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def trained_card(info: AdapterInfo) -> tuple[PersonaCard, Path]:
    manifest = json.loads((info.path / "manifest.json").read_text())
    card_path = (manifest.get("profile") or {}).get("card")
    if not card_path:
        raise UserError(f"{info.path / 'manifest.json'}: profile.card: the manifest does not say which persona card it was trained with")
    path = project_path(card_path)
    return load_card(path), path


def _replace_into(tmp: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(tmp, target)


def export(adapter: str | Path, formats: list[str], out: Path | None = None, registry: Path | None = None) -> ExportResult:
    """Export the adapter (a folder, `vNNNN` or `latest`) in `formats` (see FORMATS)."""
    from core.settings import load_settings
    from trainer.export import llama_cpp, ollama
    from trainer.export.card import write_card_png
    from trainer.export.merged import write_merged

    info = read_adapter(find_adapter(adapter, registry))
    manifest = json.loads((info.path / "manifest.json").read_text())
    todo = plan(formats)
    needs_llama = {"gguf", "lora-gguf"} & set(todo)
    llama = llama_cpp.find_llama_cpp() if needs_llama else None  # before any slow work: fail at once
    card, card_path = trained_card(info)
    if "ollama" in todo and info.prompt_format != "chat":
        raise UserError(f"{info.path}: trained in the {info.prompt_format} prompt format; the Ollama TEMPLATE is made "
                        "for chat-format adapters only (train with prompt_format: chat)")
    settings = load_settings()
    end_of_turn = manifest.get("end_of_turn_token")
    folder = Path(out) if out else exports_dir() / info.version
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{slug(card.name)}-{info.version}"
    result = ExportResult(folder)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    try:
        from core.model_resolver import load_tokenizer, resolve

        tokenizer = load_tokenizer(info.base_model)
        end_of_turn = end_of_turn or tokenizer.eos_token
        if "merged" in todo:
            tmp = work / "merged"
            write_merged(info, end_of_turn, tmp, settings.decoding.max_new_tokens)
            _replace_into(tmp, folder / "merged")
            result.files["merged"] = [folder / "merged"]
        if "gguf" in todo:
            f16, quant = folder / f"{name}.f16.gguf", folder / f"{name}.{QUANT}.gguf"
            llama_cpp.convert_model(llama, folder / "merged", work / f16.name, "f16")
            llama_cpp.quantize(llama, work / f16.name, work / quant.name, QUANT)
            for f in (f16, quant):
                os.replace(work / f.name, f)
            result.files["gguf"] = [f16, quant]
        if "lora-gguf" in todo:
            lora = folder / f"{name}.lora.gguf"
            llama_cpp.convert_lora(llama, info.path, resolve(info.base_model).folder, work / lora.name, "f16")
            os.replace(work / lora.name, lora)
            result.files["lora-gguf"] = [lora]
        if "ollama" in todo:
            where = f"{info.base_model}'s chat template"
            template = ollama.derive_template(tokenizer, where)
            ollama.check_template(template, tokenizer, card, where)
            d = settings.decoding
            decoding = ollama.Decoding(d.max_new_tokens, d.repetition_penalty, d.temperature, d.top_p, d.min_p)
            header = (f"{card.name}, adapter {info.version} on {info.base_model}, exported by `python -m trainer export`.\n"
                      f"Run as: ollama create {slug(card.name)} -f Modelfile && ollama run {slug(card.name)}")
            files = [folder / "Modelfile"]
            (work / "Modelfile").write_text(ollama.modelfile(
                source=f"./{name}.{QUANT}.gguf", adapter=None, template=template, card=card, stop=end_of_turn,
                decoding=decoding, header=header))
            base_gguf = _base_gguf(info)
            if base_gguf and (folder / f"{name}.lora.gguf").is_file():
                (work / "Modelfile.lora").write_text(ollama.modelfile(
                    source=str(base_gguf), adapter=f"./{name}.lora.gguf", template=template, card=card,
                    stop=end_of_turn, decoding=decoding, header=header.replace("-f Modelfile", "-f Modelfile.lora")))
                files.append(folder / "Modelfile.lora")
            for f in files:
                os.replace(work / f.name, f)
            result.files["ollama"] = files
        if "card" in todo:
            png = folder / f"{slug(card.name)}.card.png"
            write_card_png(card, card_path, info.version, work / png.name)
            os.replace(work / png.name, png)
            result.files["card"] = [png]
        (work / "README.md").write_text(readme(info, card, folder, name))
        os.replace(work / "README.md", folder / "README.md")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _base_gguf(info: AdapterInfo) -> Path | None:
    """The base model's own GGUF, for a LoRA GGUF to sit on: known for the embedded model."""
    from core.model_resolver import EMBEDDED_SPEC, embedded_gguf

    return embedded_gguf() if info.base_model == EMBEDDED_SPEC else None


def readme(info: AdapterInfo, card: PersonaCard, folder: Path, name: str) -> str:
    """What is in the export folder and what to do with each file (only the files present)."""
    present = lambda p: (folder / p).exists()  # noqa: E731
    short = slug(card.name)
    parts = [f"# {card.name} ({info.version}), exported\n",
             f"Adapter {info.version} trained on `{info.base_model}` in the {info.prompt_format} prompt format; "
             f"replies end with the end-of-turn token.\n"]
    if present("merged"):
        parts.append("## merged/\nThe base with the adapter merged in (full precision), a plain Hugging Face folder:\n"
                     "```\npython -c \"from transformers import pipeline; print(pipeline('text-generation', 'merged')"
                     "([{'role': 'user', 'content': 'Who are you?'}])[0]['generated_text'][-1])\"\n"
                     "vllm serve ./merged\n```\nIts generation config stops at the end-of-turn token and decodes greedily.\n")
    if present(f"{name}.{QUANT}.gguf"):
        parts.append(f"## {name}.f16.gguf, {name}.{QUANT}.gguf\nThe merged model for llama.cpp, LM Studio, KoboldCpp "
                     f"(chat template and stop token in the GGUF metadata):\n```\n"
                     f"llama-server -m {name}.{QUANT}.gguf --jinja   # then POST /v1/chat/completions\n"
                     f"llama-cli -m {name}.{QUANT}.gguf -cnv --jinja\n```\n")
    if present(f"{name}.lora.gguf"):
        parts.append(f"## {name}.lora.gguf\nThe adapter alone, for the unchanged base model's GGUF:\n"
                     f"```\nllama-server -m <base>.gguf --lora {name}.lora.gguf --jinja\n```\n")
    if present("Modelfile"):
        parts.append(f"## Modelfile\nOllama, with our chat format, the persona as system prompt, the stop token and the bot's decoding:\n"
                     f"```\nollama create {short} -f Modelfile\nollama run {short}\n```\n"
                     + ("`Modelfile.lora` does the same with the base GGUF plus the LoRA (`ADAPTER`).\n" if present("Modelfile.lora") else ""))
    if present(f"{short}.card.png"):
        parts.append(f"## {short}.card.png\nThe persona card it was trained with (SillyTavern V2): import it in "
                     "SillyTavern and connect SillyTavern to a llama.cpp or Ollama server running the GGUF "
                     "(Chat Completion, or Text Completion with the ChatML template).\n")
    return "\n".join(parts)
