"""Bad input a careless operator or a hostile user can give, answered with one line that names
the file, line or key, never a traceback: out-of-range and duplicate config values, database URLs
with the wrong driver, a pointer that is not one, registry names that are not versions, card
images that inflate or are huge, JSON nested too deeply. The commands run as subprocesses, as a
user runs them; none of them gets as far as loading a model."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import zlib

import pytest

from core.config import build, read_yaml
from core.errors import UserError
from core.persona import load_card
from core.paths import PROJECT_ROOT
from core.registry import publish, staging_dir
from core.settings import BotSettings


def run(args: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "INOSUKE_STATE_DIR": str(tmp_path / "state"),
                   "INOSUKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **env}
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                          text=True, timeout=300)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


@pytest.mark.parametrize("yaml_text, message", [
    ("engine:\n  max_queue: 0\n", "engine.max_queue: must be at least 1, got 0"),
    ("chat:\n  context_tokens: -5\n", "chat.context_tokens: must be at least 64, got -5"),
    ("serving:\n  poll_s: 0\n", "serving.poll_s: must be at least 0.1, got 0.0"),
    ("discord:\n  rate_limit_seconds: -1\n", "discord.rate_limit_seconds: must be at least 0.1, got -1.0"),
    ("chat:\n  max_input_tokens: 0\n", "chat.max_input_tokens: must be at least 1, got 0"),
    ("chat:\n  swipe_alternatives: 30\n", "chat.swipe_alternatives: must be at most 25, got 30"),
    ("serving:\n  poll_s: .nan\n", "serving.poll_s: expected a finite number, got nan"),  # NaN passes every range check
    ("discord:\n  rate_limit_seconds: inf\n", "discord.rate_limit_seconds: expected a finite number, got inf"),
    ("engine:\n  max_batch: 8\n  max_queue: 4\n  max_batch: 2\n", ":4: invalid YAML (duplicate key 'max_batch' (first on line 2))"),
])
def test_config_values_are_range_checked_and_duplicate_keys_refused(tmp_path, yaml_text, message):
    path = tmp_path / "bot.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UserError) as error:
        build(BotSettings, read_yaml(path), str(path))
    assert str(error.value).startswith(str(path)) and str(error.value).endswith(message)


def test_keys_that_are_not_names_and_set_values_that_are_not_yaml_are_one_line_errors(tmp_path):
    from core.config import with_overrides

    path = tmp_path / "bot.yaml"
    for yaml_text, says in (("engine:\n  max_queue: 8\n1: x\nfoo: y\n", ": unknown key '1' (known keys: "),
                            ("yes: 1\nfoo: y\n", ": unknown key 'True' (known keys: "),
                            ("engine: {}\n? [a, b]\n: c\n", ":2: invalid YAML (a list as a key (keys are names))")):
        path.write_text(yaml_text)
        with pytest.raises(UserError) as error:
            build(BotSettings, read_yaml(path), str(path))
        assert str(error.value).startswith(f"{path}{says}")
    with pytest.raises(UserError) as error:
        with_overrides({}, ["max_steps=[1"], "max_steps=40")
    assert str(error.value) == "--set max_steps=[1: invalid YAML value (expected ',' or ']', but got '<stream end>')"


def test_the_bot_refuses_a_bad_config_and_a_wrong_database_driver_in_one_line(tmp_path):
    bad = tmp_path / "bot.yaml"
    bad.write_text("engine:\n  max_queue: 0\n")
    assert one_line_error(run(["bot", "--console", "--config", str(bad), "--say", "hi"], tmp_path)).endswith(
        "engine.max_queue: must be at least 1, got 0")
    for url, says in (("mysql+aiomysql://inosuke:hunter2@localhost/inosuke", "'mysql+aiomysql' is not supported"),
                      ("postgresql+nosuchdriver://inosuke:hunter2@localhost/inosuke", "is not supported"),
                      ("nosuchdb://x", "is not supported"),
                      ("inosuke:hunter2@localhost", "not a database URL")):
        line = one_line_error(run(["bot", "--console", "--say", "hi"], tmp_path, INOSUKE_DATABASE_URL=url))
        assert line.startswith("error: INOSUKE_DATABASE_URL") and says in line and "hunter2" not in line


@pytest.mark.parametrize("pointer, says", [
    ([], "expected an object with a version, got list"),
    ({"version": 5}, "version: expected a name such as v0003 or null, got 5"),
    ({"version": "../../etc"}, "version: expected a name such as v0003 or null"),
    ({"version": "v0002\n"}, "version: expected a name such as v0003 or null, got 'v0002\\n'"),
    ({"version": "v0001", "history": ["../x"]}, "history: expected a list of names such as v0003"),
    ("[[[" * 100_000 + "]]]" * 100_000, "unreadable"),
])
def test_a_pointer_that_is_not_one_is_a_one_line_error(tmp_path, pointer, says):
    current = tmp_path / "state" / "adapters" / "current.json"
    current.parent.mkdir(parents=True)
    current.write_text(pointer if isinstance(pointer, str) else json.dumps(pointer))
    line = one_line_error(run(["trainer", "rollback"], tmp_path))
    assert line.startswith(f"error: {current}") and says in line


def test_rollback_accepts_only_version_names(tmp_path):
    registry = tmp_path / "state" / "adapters"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text("{}")
    line = one_line_error(run(["trainer", "rollback", "--to", "../../x"], tmp_path))
    assert "expected a version name such as v0003" in line
    assert not (registry / "current.json").exists()


def test_publishing_skips_a_version_folder_without_a_manifest(tmp_path):
    registry = tmp_path / "adapters"
    (registry / "v0001").mkdir(parents=True)  # copied by hand, half way; or damaged
    (registry / "v0001" / "adapter_config.json").write_text("{}")
    staged = staging_dir(registry)
    (staged / "adapter_config.json").write_text("{}")
    published = []
    worker = threading.Thread(target=lambda: published.append(publish(staged, {"base_model": "x"}, registry)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "publish is spinning"
    assert published == [registry / "v0002"] and json.loads((registry / "v0002" / "manifest.json").read_text())["version"] == "v0002"


def png(width: int, height: int, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG file's bytes: the header, the given chunks, a token of pixel data, the end."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + b"".join(
        chunk(kind, data) for kind, data in chunks) + chunk(b"IEND", b"")


def test_card_images_that_inflate_or_are_huge(tmp_path, small_card):
    encoded = base64.b64encode(json.dumps(small_card).encode())
    huge = tmp_path / "huge.png"  # 20000 x 20000: never decoded, only its text is read
    huge.write_bytes(png(20000, 20000, [(b"tEXt", b"chara\0" + encoded)]))
    assert load_card(huge).name == "Rengoku Kyojuro"

    bomb = tmp_path / "bomb.png"  # 20 KB of zTXt that inflates to 64 MiB
    bomb.write_bytes(png(4, 4, [(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (64 << 20), 9))]))
    with pytest.raises(UserError, match=r"bomb.png: chara: the text chunk inflates past 16 MiB"):
        load_card(bomb)
    line = one_line_error(run(["bot", "--console", "--card", str(bomb), "--say", "hi"], tmp_path))
    assert "bomb.png: chara: the text chunk inflates past 16 MiB" in line

    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested.json: card: JSON nested too deeply"):
        load_card(nested)
