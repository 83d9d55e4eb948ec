"""Chat-log rows staged for training on disk, under the state folder: a retrain's
`approved_logs.jsonl` and rejects, and the dataset snapshot of each training run. Every such row
carries the `reply_id` of the reply it was made from, so /forget-me can take a user's words out
of them too (an adapter already trained on them cannot be recalled; see the README)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from core.files import json_lines, write_atomic
from core.paths import state_dir

# Where chat-log rows are written: retrain work folders and training runs' datasets.
STAGED = ("retrain/**/*.jsonl", "runs/*/dataset/*.jsonl")


def row_reply_id(row: object) -> int | None:
    """The reply a staged row was made from (a rejects row nests the row it set aside)."""
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("reply_id"), int):
        return row["reply_id"]
    return row_reply_id(row.get("row"))


# One purge at a time: each rewrites whole files from what it read, so two at once (a delete and
# an edit a moment apart, each on its own thread) would put back what the other one removed.
_PURGING = threading.Lock()
REPLY_ID = re.compile(r'"reply_id"\s*:\s*(\d+)')


def purge_replies(reply_ids: set[int], state: Path | None = None) -> tuple[int, int]:
    """Rewrite every staged file without the rows made from `reply_ids`. Returns (files
    rewritten, rows removed). Lines that are not JSON are left as they are."""
    if not reply_ids:
        return 0, 0
    state = state or state_dir()
    files = rows = 0
    with _PURGING:
        for pattern in STAGED:
            for path in sorted(state.glob(pattern)):
                removed = purge_file(path, reply_ids)
                files, rows = files + (removed > 0), rows + removed
    return files, rows


def purge_file(path: Path, reply_ids: set[int]) -> int:
    """Rewrite one staged file without the rows of `reply_ids`; how many rows went."""
    text = path.read_text(encoding="utf-8", errors="replace")
    # A file that spells none of these ids holds none of their rows, and is not parsed: every
    # Discord edit and delete purges, and most files hold none of its replies.
    if not reply_ids & {int(n) for n in REPLY_ID.findall(text)}:
        return 0
    kept, removed = [], 0
    for _, line in json_lines(text):
        try:
            reply = row_reply_id(json.loads(line))
        except (ValueError, RecursionError):
            reply = None
        if reply in reply_ids:
            removed += 1
        else:
            kept.append(line + "\n")
    if removed:
        write_atomic(path, "".join(kept))
    return removed
