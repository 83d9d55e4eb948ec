"""Data files that cannot break the pipeline: U+2028, U+2029 and U+0085 in chat messages and
curated files neither split a row nor break the training text; bad rows (nested too deep, a CSV
field over the csv module's limit, bad UTF-8) are reported with their file and line, or set
aside; a retrain reports them and goes on, and `schedule --every` survives a failing check.
Commands run as subprocesses on real files and a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from core.db.database import connect, connect_sync, upgrade
from core.db.history import History
from core.db.ratings import Ratings
from core.errors import UserError
from core.files import read_jsonl
from core.paths import PROJECT_ROOT
from trainer.chat_logs import LogRules, collect, write_samples
from trainer.dataset.pipeline import build_dataset
from trainer.encode import encode

SEPARATORS = "\u2028\u2029\u0085"
GUILD, OTHER_GUILD = 900_000_000_000_000_010, 900_000_000_000_000_011


def seed_chat(url: str, lines: list[tuple[int, int, str, str]]) -> None:
    """(channel, guild, question, reply) exchanges, each reply approved by a moderator."""
    async def main():
        async with connect(url) as sessions:
            history, ratings = History(sessions), Ratings(sessions)
            for channel, guild, question, reply in lines:
                asked = await history.add(channel, 7, "Kanao", question, guild_id=guild)
                answer = await history.add(channel, 0, "Inosuke", reply, by_bot=True, answers_id=asked)
                await ratings.decide(answer, 9, approved=True)

    asyncio.run(main())


def run(args: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "INOSUKE_STATE_DIR": str(tmp_path / "state"),
                   "INOSUKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **env}
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                          text=True, timeout=300)


def test_line_separators_break_neither_the_data_nor_the_training_text(tmp_path, persona, tokenizer, db_url):
    seed_chat(db_url, [(10, GUILD, f"one{SEPARATORS}line", f"HAH!\u2028I heard{SEPARATORS}you")])
    with connect_sync(db_url) as sessions:
        export = collect(sessions, persona, tokenizer, LogRules(min_thumbs_up=2, max_thumbs_down=0))
    data = tmp_path / "data"
    written = write_samples(export, data / "approved_logs.jsonl").read_text(encoding="utf-8")
    assert len(written.splitlines()) == 1  # escaped: no reader, however it splits lines, cuts the row
    (data / "extra.json").write_text(json.dumps([{"instruction": f"Say{SEPARATORS}it", "output": "HAH!\u2029HAH!"},
                                                 {"instruction": "Again", "output": "LORD INOSUKE!"}], ensure_ascii=False))
    (data / "quotes.txt").write_text(f"Pig assault!{SEPARATORS}Beast breathing!\nI'm the king of the mountains!\n")

    result = build_dataset(data, persona, tmp_path / "out", eval_fraction=0.0)
    assert result.problems == [] and len(result.train) == 5  # 1 chat log, 2 from the .json, 2 quotes
    rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 5 and any(SEPARATORS in json.dumps(r, ensure_ascii=False) for r in rows)
    for row in rows:  # the training text of every sample, in both formats
        for prompt_format in ("chat", "alpaca"):
            assert encode(tokenizer, row, prompt_format)["input_ids"]


def test_data_build_names_the_file_and_line_of_every_bad_row(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text("".join(json.dumps({"instruction": f"q{n}", "output": f"HAH {n}!"}) + "\n" for n in range(4)))
    (data / "deep.jsonl").write_text(json.dumps({"instruction": "a", "output": "A!"}) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    (data / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (data / "big.csv").write_text("instruction,output\n" + "short,fine\n" + '"' + "x" * 200_000 + '",too big\n')
    (data / "bad.txt").write_bytes("Fine.\nAlso fine.\n".encode() + b"Not \xff\xfe UTF-8\n")

    failed = run(["trainer", "data", "build", "--data", str(data), "--out", str(tmp_path / "out")], tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    for problem in (f"{data / 'deep.jsonl'}:2: json: nested too deeply", f"{data / 'deep.json'}:1: json: nested too deeply",
                    f"{data / 'big.csv'}:3: csv: field larger than field limit", f"{data / 'bad.txt'}:3: file: not UTF-8 text"):
        assert problem in failed.stderr, failed.stderr

    rejects = tmp_path / "rejects.jsonl"
    kept = run(["trainer", "data", "build", "--data", str(data), "--out", str(tmp_path / "out"), "--rejects", str(rejects)], tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert len(read_jsonl(rejects)) == 4


def test_names_that_look_like_markup_or_math_are_text_in_the_report_and_the_chart(tmp_path):
    """The persona's name and the data files' names reach Rich's table and matplotlib's chart:
    "[/b]" (a Rich closing tag) or "$\\foo{$" (mathtext) made the build fail after it had written
    its files."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "[b]quotes$x$.jsonl").write_text("".join(json.dumps({"instruction": f"q{n}", "output": f"HAH {n}!"}) + "\n"
                                                     for n in range(4)))
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "Ino [/b] $\\foo{$", "description": "A boar.", "mes_example": ""}))
    out = tmp_path / "out"
    built = run(["trainer", "data", "build", "--data", str(data), "--card", str(card), "--out", str(out), "--skip-quality"],
                tmp_path)
    assert built.returncode == 0 and "Traceback" not in built.stderr, built.stderr
    assert "Ino [/b] $\\foo{$ dataset" in built.stdout and "[b]quotes$x$" in built.stdout
    assert (out / "composition.png").stat().st_size > 0


def test_a_build_with_an_output_it_cannot_write_leaves_the_previous_build_untouched(tmp_path, persona):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text("".join(json.dumps({"instruction": f"q{n}", "output": f"HAH {n}!"}) + "\n" for n in range(6)))
    out = tmp_path / "out"
    build_dataset(data, persona, out, eval_fraction=0.2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (data / "more.jsonl").write_text('{"instruction": "q9", "output": "HAH 9!"}\n{"instruction": "no output"}\n')
    (tmp_path / "rejects").mkdir()
    (tmp_path / "a_file").write_text("mine")
    for rejects, says in ((tmp_path / "rejects", "rejects: is a folder; expected the rejects file here"),
                          (tmp_path / "a_file" / "rejects.jsonl", "a_file is a file, not a folder; cannot write the rejects file there")):
        with pytest.raises(UserError, match=says):
            build_dataset(data, persona, out, eval_fraction=0.2, rejects=rejects)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(UserError, match="a_file: is a file; expected the dataset folder here"):
        build_dataset(data, persona, tmp_path / "a_file", eval_fraction=0.2, rejects=tmp_path / "rejects.jsonl")
    assert (tmp_path / "a_file").read_text() == "mine" and not (tmp_path / "rejects.jsonl").exists()


def test_a_retrain_sets_bad_rows_aside_and_counts_only_its_training_guilds(tmp_path):
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    seed_chat(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", [
        (10, GUILD, f"Let's race{SEPARATORS}now!", f"A RACE?!\u2028I'll win!"),
        (20, OTHER_GUILD, "I run another server", "Who cares!"),
    ])
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text("".join(json.dumps({"instruction": f"q{n}", "output": f"HAH {n}!"}) + "\n" for n in range(6)))
    (data / "bad.jsonl").write_text('{"instruction": "no output"}\n')
    done = run(["trainer", "retrain", "--dry-run", "--set", f"training_guilds=[{GUILD}]",
                "--set", f"profile_overrides=[data={data}]"], tmp_path, COLUMNS="250")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approved chat-log samples: 1 " in done.stdout and "1 from servers not in training_guilds" in done.stdout
    assert "bad rows a retrain would set aside: 1" in done.stdout and "bad.jsonl:1: output: missing" in done.stdout


def test_new_runs_set_bad_rows_aside_and_record_them(tmp_path):
    from trainer.profile import load_profile
    from trainer.train import new_run, read_run

    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text("".join(json.dumps({"instruction": f"q{n}", "output": f"HAH {n}!"}) + "\n" for n in range(6)))
    (data / "bad.jsonl").write_text('{"instruction": "no output"}\n' + "[" * 100_000 + "\n")
    run_dir, _ = new_run(load_profile("smollm2-cpu", [f"data={data}"]), tmp_path / "runs", tmp_path / "rejects.jsonl")
    assert read_run(run_dir)["rejected_rows"] == 2 and len(read_jsonl(tmp_path / "rejects.jsonl")) == 2
    assert len(read_jsonl(run_dir / "dataset" / "train.jsonl")) + len(read_jsonl(run_dir / "dataset" / "eval.jsonl")) == 6


def test_schedule_every_survives_a_failing_check(tmp_path):
    broken = tmp_path / "broken.db"
    broken.mkdir()  # the database path is a folder: every check fails
    env = {**os.environ, "INOSUKE_STATE_DIR": str(tmp_path / "state"), "INOSUKE_DATABASE_URL": f"sqlite+aiosqlite:///{broken}",
           "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "schedule.log"
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-m", "trainer", "schedule", "--every", "1"], cwd=PROJECT_ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while log.read_text().count("this check failed") < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert child.poll() is None, log.read_text()  # still running
        assert log.read_text().count("this check failed") >= 2 and "Traceback" not in log.read_text()
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.mark.parametrize("every", ["-1", "nan", "0", "0.5", "inf"])
def test_schedule_every_must_be_a_sane_number_of_seconds(tmp_path, capsys, every):
    from core.cli import run as run_cli
    from trainer.__main__ import main

    # Checked before the first check: 0 was a busy loop, -1 and nan failed in time.sleep after it.
    assert run_cli(main, ["schedule", "--every", every, "--config", str(tmp_path / "retrain.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --every {float(every):g}: expected a number of seconds, at least 1\n"
