"""python -m trainer export --adapter vNNNN|latest|PATH --format merged,gguf,lora-gguf,ollama,card [--out DIR]"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="export an adapter: merged model, GGUF, llama.cpp LoRA, Ollama, card")
    parser.add_argument("--adapter", required=True, help="adapter folder, registry version (v0003) or latest")
    parser.add_argument("--format", dest="formats", default="merged,gguf,lora-gguf,ollama,card",
                        help="comma-separated: merged, gguf, lora-gguf, ollama, card (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: state/exports/<version>/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.export.export import export, parse_formats

    result = export(args.adapter, parse_formats(args.formats), args.out)
    print(f"exported to {result.folder} (see its README.md)")
    for kind, files in result.files.items():
        for path in files:
            print(f"  {kind:10s} {path.name}")
    return 0
