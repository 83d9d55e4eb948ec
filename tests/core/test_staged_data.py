"""Purging chat-log rows from training files staged on disk (what /forget-me, Discord deletes and
edits take out of them)."""

from __future__ import annotations

import json
import threading
import time

import core.staged_data as staged_data
from core.staged_data import purge_replies


def staged_file(state, rows: list[str]):
    path = state / "retrain" / "20261207-000000" / "approved_logs.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(row + "\n" for row in rows))
    return path


def test_every_row_of_the_replies_goes_however_it_is_spaced_or_nested(tmp_path):
    path = staged_file(tmp_path, [json.dumps({"reply_id": 5, "output": "a"}),
                                  '{"reply_id":5,"output":"compact"}',
                                  json.dumps({"problem": "empty", "row": {"reply_id": 5}}),  # a rejects row
                                  json.dumps({"reply_id": 55, "output": "another reply"}),
                                  "not json"])
    assert purge_replies({5}, tmp_path) == (1, 3)
    assert path.read_text() == json.dumps({"reply_id": 55, "output": "another reply"}) + "\nnot json\n"


def test_two_purges_at_once_both_hold(tmp_path, monkeypatch):
    """Each purge rewrites the whole file from what it read: two at once (a delete and an edit a
    moment apart, each on its own thread) must not put back what the other one removed."""
    path = staged_file(tmp_path, [json.dumps({"reply_id": n}) for n in range(1, 5)])
    write = staged_data.write_atomic

    def slow_write(target, text):  # the first purge has read the file and is still writing
        time.sleep(0.3)
        write(target, text)

    monkeypatch.setattr(staged_data, "write_atomic", slow_write)
    first = threading.Thread(target=purge_replies, args=({1}, tmp_path))
    first.start()
    time.sleep(0.1)
    purge_replies({2}, tmp_path)
    first.join()
    assert [json.loads(line)["reply_id"] for line in path.read_text().splitlines()] == [3, 4]
