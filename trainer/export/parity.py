"""Does the exported model answer like the trained one? Greedy tokens from transformers against
llama.cpp's server on the exported GGUF, on prompts rendered by our one prompt builder.

Used by tests/trainer/test_export_parity.py (which asserts) and bench/export_parity.py (which prints
the figures). Decoding is the same on both sides: greedy with the bot's repetition penalty over the whole
sequence, prompt included, the context scope, as llama.cpp has no other (transformers' RepetitionPenaltyLogitsProcessor; llama-server feeds the
prompt to its penalty sampler, and repeat_last_n = the context size makes its window the whole sequence; both divide a
positive logit by the penalty and multiply a negative one). Pure greedy is no use here: without the
penalty a 24-step adapter on the full-precision base loops past the token limit on 5 of 8 prompts."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.decoding import REPETITION_PENALTY
from core.persona import PersonaCard
from core.prompt import Turn, chat_messages, generation_prompt

# Conversations the bot sees: a lone question, a multi-turn chat, several users, a fact question.
PARITY_TURNS: list[list[Turn]] = [
    [Turn("Who are you?")],
    [Turn("What is the capital of France?")],
    [Turn("Do you like tempura?")],
    [Turn("Hi!"), Turn("WHO ARE YOU?! Fight me!", by_persona=True), Turn("No thanks. What are you doing today?")],
    [Turn("Inosuke, can you read?", speaker="Zenitsu"), Turn("Of course he can't", speaker="Tanjiro")],
    [Turn("Tell me about your mask.")],
    [Turn("What is 2 + 2?")],
    [Turn("Say something nice about Tanjiro.")],
]


def parity_prompts(tokenizer, card: PersonaCard) -> list[str]:
    return [generation_prompt(tokenizer, card, turns) for turns in PARITY_TURNS]


def parity_messages(card: PersonaCard) -> list[list[dict[str, str]]]:
    return [chat_messages(card, turns) for turns in PARITY_TURNS]


@dataclass(frozen=True)
class Greedy:
    tokens: list[int]  # generated tokens, the end-of-turn token excluded
    ended: bool  # stopped at the end-of-turn token (rather than the token limit)


def hf_greedy(model, tokenizer, prompts: list[str], end_of_turn_id: int, max_new_tokens: int) -> list[Greedy]:
    """One prompt at a time (no padding: padding changes float results a little)."""
    import torch

    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
        with torch.inference_mode():
            row = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, repetition_penalty=REPETITION_PENALTY, eos_token_id=end_of_turn_id,
                                 pad_token_id=end_of_turn_id)[0, ids.shape[1]:].tolist()
        ended = end_of_turn_id in row
        out.append(Greedy(row[: row.index(end_of_turn_id)] if ended else row, ended))
    return out


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Agreement:
    identical: int  # prompts whose whole reply is the same token for token
    prompts: int
    prefix_fraction: float  # mean share of each reply (the longer side) generated before the first difference

    def __str__(self) -> str:
        return f"{self.identical}/{self.prompts} replies identical, {100 * self.prefix_fraction:.0f}% of tokens before the first difference"


def agreement(reference: list[Greedy], other: list[Greedy]) -> Agreement:
    identical = sum(a.tokens == b.tokens and a.ended == b.ended for a, b in zip(reference, other))
    fractions = [common_prefix(a.tokens, b.tokens) / max(len(a.tokens), len(b.tokens), 1) if a.tokens != b.tokens else 1.0
                 for a, b in zip(reference, other)]
    return Agreement(identical, len(reference), sum(fractions) / len(fractions))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama.cpp's llama-server on a free loopback port, for the `with` block; killed after."""

    # One thread: the figures do not depend on it, and on shared, busy cores llama.cpp's spinning
    # threads slow each other down (measured under load: 8.5 tok/s with one thread, 0.8 with two).
    def __init__(self, binary: Path, model: Path, *extra: str, threads: int = 1, ctx: int = 2048):
        self.ctx = ctx  # also the penalty window: the whole context, prompt included
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), "-t", str(threads),
                     "-c", str(ctx), "-np", "1", "--jinja", "--no-webui", *extra]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LlamaServer":
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().strip().splitlines()
                raise RuntimeError(f"llama-server exited ({self.process.returncode}): {err[-1] if err else ''}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("llama-server did not become healthy in 180 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as r:
            return json.loads(r.read())

    def greedy(self, prompt: str | list[int], max_new_tokens: int) -> Greedy:
        out = self.post("/completion", {"prompt": prompt, "n_predict": max_new_tokens, "temperature": 0, "top_k": 1,
                                        "repeat_penalty": REPETITION_PENALTY, "repeat_last_n": self.ctx, "return_tokens": True, "cache_prompt": False})
        return Greedy(list(out["tokens"]), out["stop_type"] == "eos")

    def chat(self, messages: list[dict[str, str]], max_new_tokens: int) -> dict:
        """/v1/chat/completions: the GGUF's own chat template renders the prompt."""
        return self.post("/v1/chat/completions", {"messages": messages, "max_tokens": max_new_tokens, "temperature": 0,
                                                  "top_k": 1, "repeat_penalty": REPETITION_PENALTY, "repeat_last_n": self.ctx, "cache_prompt": False})

    def apply_template(self, messages: list[dict[str, str]]) -> str:
        return self.post("/apply-template", {"messages": messages})["prompt"]

    def tokenize(self, text: str) -> list[int]:
        return self.post("/tokenize", {"content": text, "add_special": False, "parse_special": True})["tokens"]
