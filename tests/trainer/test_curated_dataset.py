"""The curated data in data/, built by the real command: size, composition, distinct lines, shape\nof the conversations, and voice."""

import json
from collections import Counter
import os
import re
import subprocess
import sys

import pytest

from core.paths import PROJECT_ROOT

ASSISTANT_SPEAK = re.compile(r"as an ai|language model|happy to help|i'm here to help|how can i assist|i apologize", re.I)


@pytest.fixture(scope="module")
def build(tmp_path_factory, model_cache):
    out = tmp_path_factory.mktemp("dataset")
    done = subprocess.run(
        # The quality report (MiniLM over every line) has its own test in test_data_quality.py.
        [sys.executable, "-m", "trainer", "data", "build", "--skip-quality", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
        env={**os.environ, "INOSUKE_CACHE_DIR": str(model_cache), "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "dataset.json").read_text())
    samples = [json.loads(l) for f in ("train.jsonl", "eval.jsonl") for l in (out / f).read_text().splitlines()]
    return done.stdout, summary, samples, out


def test_build_reports_the_table_and_no_errors(build):
    stdout, summary, samples, out = build
    assert "validation errors: 0" in stdout and "duplicates removed: 0" in stdout
    for row in summary["composition"]:
        assert re.search(rf"{row['source']}\s+│\s+{row['samples']:,}\s+│\s+{row['share']:.1f}%", stdout)
    assert re.search(rf"Total\s+│\s+{summary['samples']:,}\s+│\s+100\.0%", stdout)
    assert (out / "composition.png").stat().st_size > 10_000


def test_at_least_three_thousand_samples_in_the_four_sources(build):
    _, summary, samples, _ = build
    shares = {row["source"]: row["share"] for row in summary["composition"]}
    assert summary["samples"] == len(samples) >= 3000
    assert {"persona", "quotes", "conversations", "generic_qa"} <= set(shares)
    assert all(shares[source] > 10 for source in ("persona", "quotes", "conversations", "generic_qa"))
    assert summary["eval"] > 0 and summary["train"] + summary["eval"] == summary["samples"]


def test_every_persona_line_is_written_for_its_place(build):
    """At least 2,500 distinct lines by Inosuke, none used more than 3 times: no reply is a
    recombined variant that answers a line nobody said."""
    _, _, samples, _ = build
    lines = Counter(m["content"] for s in samples for m in s["messages"] if m["role"] == "assistant")
    assert len(lines) >= 2500
    assert lines.most_common(1)[0][1] <= 3, lines.most_common(3)


def test_every_sample_ends_with_inosuke_and_never_sounds_like_an_assistant(build):
    _, _, samples, _ = build
    for sample in samples:
        messages = sample["messages"]
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "assistant"
        assert not ASSISTANT_SPEAK.search(" ".join(m["content"] for m in messages if m["role"] == "assistant")), sample["origin"]


def test_conversations_are_two_to_six_turns_with_seed_prefixes(build):
    _, _, samples, _ = build
    conversations = [s for s in samples if s["source"] == "conversations"]
    lengths = {len(s["messages"]) - 1 for s in conversations}
    assert lengths == {2, 4, 6}
    for s in conversations:
        assert s["output"].startswith("Inosuke: ")
        assert all(re.match(r"^[A-Z][\w'.-]*(?: [A-Z][\w'.-]*)?: ", line) for line in s["input"].splitlines())
    group = [s for s in conversations if re.search(r"^(Zenitsu|Tanjiro|Aoi|Kanao): ", s["messages"][1]["content"], re.M)]
    assert len(group) > 50  # other speakers labelled, as the bot labels a group chat


def test_names_given_earlier_are_called_back(build):
    """Multi-turn callbacks: a user who says their name hears it again from Inosuke later."""
    _, _, samples, _ = build
    called_back = 0
    for s in samples:
        if s["source"] != "conversations":
            continue
        first = s["messages"][1]["content"]
        named = re.search(r"\b(?:I'm|I am|my name is|call me) ([A-Z][a-z]+)", first)
        later = " ".join(m["content"] for m in s["messages"][2:] if m["role"] == "assistant")
        called_back += bool(named and re.search(rf"\b{named[1]}\b", later))
    assert called_back >= 150


def test_his_voice_is_there(build):
    _, _, samples, _ = build
    text = " ".join(s["output"] for s in samples)
    for mark in ("Lord Inosuke", "King of the Mountains", "Monjiro", "Monitsu", "tempura", "boar", "fuzzy"):
        assert mark.lower() in text.lower(), mark
