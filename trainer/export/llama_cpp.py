"""Where llama.cpp's tools come from, and running them.

`make llama.cpp` builds llama.cpp once from the source that the `llama-cpp-python` sdist on PyPI
vendors (PyPI has no CPU wheel; the sdist is a package install, nothing else is downloaded) into
.cache/llama.cpp/: bin/ holds llama-server, llama-quantize and llama-cli, src/ the source tree
with the Python converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py) and gguf-py.
$INOSUKE_LLAMA_CPP points at another folder laid out the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.paths import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT / ".cache" / "llama.cpp"
HOW_TO_GET = "run `make llama.cpp` (builds it once into .cache/llama.cpp/ from the llama-cpp-python sdist on PyPI, about 5 minutes on 2 cores)"


@dataclass(frozen=True)
class LlamaCpp:
    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    def tool(self, name: str) -> Path:
        return self.root / "bin" / name

    def converter_env(self) -> dict[str, str]:
        """The converters import gguf-py and the `conversion` package that sit beside them: the
        vendored gguf-py goes first so that it matches the converter, whatever gguf pip installed."""
        env = dict(os.environ)
        paths = [str(self.src / "gguf-py"), str(self.src)]
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return env


def find_llama_cpp(need: tuple[str, ...] = ("llama-quantize",)) -> LlamaCpp:
    """The built llama.cpp, or a one-line UserError saying how to get it."""
    root = Path(os.environ.get("INOSUKE_LLAMA_CPP", DEFAULT_DIR))
    found = LlamaCpp(root)
    missing = [n for n in need if not os.access(found.tool(n), os.X_OK)]
    if not (found.src / "convert_hf_to_gguf.py").is_file():
        missing.append("convert_hf_to_gguf.py")
    if missing:
        raise UserError(f"llama.cpp is not built in {root} (missing {', '.join(missing)}): {HOW_TO_GET}")
    return found


def run_tool(args: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a llama.cpp tool or converter; on failure, one line with its last error line."""
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [l for l in (result.stderr + result.stdout).strip().splitlines() if l.strip()]
        raise UserError(f"{what} failed (exit {result.returncode}): {lines[-1] if lines else 'no output'}")


def convert_model(llama: LlamaCpp, hf_folder: Path, out: Path, outtype: str = "f16") -> None:
    """A HF model folder to GGUF with llama.cpp's own converter (chat template and special tokens
    go into the GGUF metadata from the folder's tokenizer files)."""
    run_tool([sys.executable, str(llama.src / "convert_hf_to_gguf.py"), str(hf_folder), "--outfile", str(out),
              "--outtype", outtype], f"convert_hf_to_gguf.py on {hf_folder}", llama.converter_env())


def convert_lora(llama: LlamaCpp, adapter: Path, base_folder: Path, out: Path, outtype: str = "f16") -> None:
    """A PEFT adapter to a llama.cpp LoRA GGUF (for --lora, or Ollama's ADAPTER)."""
    run_tool([sys.executable, str(llama.src / "convert_lora_to_gguf.py"), "--base", str(base_folder),
              "--outfile", str(out), "--outtype", outtype, str(adapter)],
             f"convert_lora_to_gguf.py on {adapter}", llama.converter_env())


def quantize(llama: LlamaCpp, gguf: Path, out: Path, kind: str = "Q4_K_M") -> None:
    threads = str(max(1, min(4, os.cpu_count() or 1)))
    run_tool([str(llama.tool("llama-quantize")), str(gguf), str(out), kind, threads], f"llama-quantize {kind}")
