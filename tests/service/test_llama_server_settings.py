"""backend: llama-server without a model (fast): its settings checked with one line naming the key,
the LoRA GGUF found where the export writes it, and promotions and rollbacks exporting it before
the pointer moves. The real llama-server runs in tests/discord_front/test_llama_server_engine_e2e.py."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.paths import exported_lora_gguf
from core.serving_pointer import in_service, promote, rollback
from core.settings import load_settings


@pytest.mark.parametrize("text, message", [
    ("backend: llama-server\nllama_server:\n  threads: 0\n", "llama_server.threads: must be at least 1, got 0"),
    ("backend: llama-server\nllama_server:\n  parallel: 0\n", "llama_server.parallel: must be at least 1, got 0"),
    ("backend: llama-server\nllama_server:\n  start_timeout_s: 0\n", "llama_server.start_timeout_s: must be at least 1"),
    ("backend: llama-server\nllama_server:\n  request_timeout_s: 0\n", "llama_server.request_timeout_s: must be at least 1"),
    ("backend: llama-server\nllama_server:\n  ctx: 4096\n", "unknown key 'llama_server.ctx'"),
    ("backend: llama-server\nllama_server:\n  context_size: 4096\n  parallel: 8\n",
     "llama_server.context_size: 4096 tokens over 8 slots leaves 512 per reply, less than chat.context_tokens "
     "+ decoding.max_new_tokens = 1184"),
    ("backend: llama-server\nmodel: Qwen/Qwen2.5-3B-Instruct\n",
     "llama_server.model: set the GGUF of the base model 'Qwen/Qwen2.5-3B-Instruct'"),
])
def test_llama_server_settings_are_checked_with_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bot.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="^" + str(path).replace(".", r"\.") + ": ") as error:
        load_settings(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_llama_server_section_reads_and_applies_only_to_its_backend(tmp_path):
    path = tmp_path / "bot.yaml"
    path.write_text("backend: llama-server\nllama_server:\n  threads: 1\n  parallel: 2\n  context_size: 4096\n")
    settings = load_settings(path).llama_server
    assert (settings.threads, settings.parallel, settings.context_size, settings.model) == (1, 2, 4096, None)
    path.write_text("model: Qwen/Qwen2.5-3B-Instruct\nllama_server:\n  context_size: 256\n")  # backend: local
    assert load_settings(path).backend == "local"


def test_the_lora_gguf_is_found_where_the_export_writes_it(tmp_path):
    assert exported_lora_gguf("v0003", tmp_path) is None
    folder = tmp_path / "v0003"
    folder.mkdir()
    (folder / "inosuke-hashibira-v0003.f16.gguf").write_bytes(b"")  # the merged model: not the LoRA
    assert exported_lora_gguf("v0003", tmp_path) is None
    (folder / "inosuke-hashibira-v0003.lora.gguf").write_bytes(b"")
    assert exported_lora_gguf("v0003", tmp_path) == folder / "inosuke-hashibira-v0003.lora.gguf"


def publish(registry, version):
    folder = registry / version
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": version}))
    return folder


def test_promotion_and_rollback_prepare_the_version_before_the_pointer_moves(tmp_path):
    registry = tmp_path / "adapters"
    first, second = publish(registry, "v0001"), publish(registry, "v0002")
    prepared = []
    promote(first, registry, prepare=prepared.append)
    promote(second, registry, prepare=prepared.append)
    assert rollback(registry, prepare=prepared.append) == ("v0002", "v0001")
    assert prepared == [first, second, first]

    def refuse(adapter):
        raise UserError("no GGUF")

    with pytest.raises(UserError):
        promote(second, registry, prepare=refuse)
    assert in_service(registry).name == "v0001"  # a failed preparation leaves the pointer where it was


@pytest.mark.parametrize("backend, exported, expect_export", [("local", False, False), ("llama-server", True, False),
                                                             ("llama-server", False, True)])
def test_the_trainer_exports_the_lora_gguf_only_for_llama_server_and_only_once(tmp_path, monkeypatch, backend, exported,
                                                                              expect_export):
    from trainer.export import export as export_module
    from trainer.export.serving import prepare_for_serving

    monkeypatch.setenv("INOSUKE_STATE_DIR", str(tmp_path / "state"))
    adapter = publish(tmp_path / "state" / "adapters", "v0007")
    if exported:
        (tmp_path / "state" / "exports" / "v0007").mkdir(parents=True)
        (tmp_path / "state" / "exports" / "v0007" / "inosuke-hashibira-v0007.lora.gguf").write_bytes(b"")
    config = tmp_path / "bot.yaml"
    config.write_text(f"backend: {backend}\n")
    calls = []
    monkeypatch.setattr(export_module, "export", lambda adapter, formats, **kw: calls.append((adapter, formats)))
    prepare_for_serving(adapter, config)
    assert calls == ([(adapter, ["lora-gguf"])] if expect_export else [])


def test_a_missing_binary_gguf_or_lora_gguf_is_one_line_saying_what_to_run(tmp_path):
    from bot.service.engine_client import EngineUnavailable
    from bot.service.llama_server_engine import LlamaServerEngine, lora_gguf
    from core.settings import LlamaServerSettings

    with pytest.raises(UserError, match=r"^llama_server\.binary: .*nope is not an executable: run `make llama\.cpp`"):
        LlamaServerEngine(LlamaServerSettings(binary=str(tmp_path / "nope")), None).start()
    with pytest.raises(UserError, match=r"^llama_server\.model: no such GGUF file .*base\.gguf$"):
        LlamaServerEngine(LlamaServerSettings(model=str(tmp_path / "base.gguf")), None).start()
    with pytest.raises(EngineUnavailable, match=r"adapter v0009 has no LoRA GGUF in .*v0009 .*: run `python -m trainer "
                                                r"export --adapter v0009 --format lora-gguf`$"):
        lora_gguf("v0009", tmp_path)
