"""Two bot processes, one shard each, on one PostgreSQL database: the real `python -m bot` command
(through tests/discord_front/bot_process.py, which points it at the emulator and gives it the fake
language model) started at the same moment on an empty database. Both migrate it at once without
tripping over each other; each gets the guild of its own shard; every message in both guilds is
answered once and stored, with every rating; only the process running shard 0 syncs commands."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from core.paths import PROJECT_ROOT
from tests.discord_front.emulator import GENERAL, GUILD_ID, SECOND_GUILD, Emulator, shard_of

DOJO = 111  # a channel of the second guild
MESSAGES = 12  # per guild, each from a different user (the per-user rate limit stays out of the way)


async def start_bot(emulator: Emulator, shard: int, url: str, tmp_path) -> asyncio.subprocess.Process:
    env = {**os.environ, "DISCORD_TOKEN": "emulated-token", "INOSUKE_DATABASE_URL": url,
           "INOSUKE_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.discord_front.bot_process", emulator.base, "--",
        "--config", str(tmp_path / "bot.yaml"), "--shard-count", "2", "--shard-ids", str(shard),
        cwd=PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def wait_for_line(process: asyncio.subprocess.Process, text: str, seen: list[str], timeout: float = 120) -> None:
    async with asyncio.timeout(timeout):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"the bot process ended before saying {text!r}:\n{''.join(seen)}")
            seen.append(line)
            if text in line:
                return


def test_two_processes_each_run_a_shard_on_one_postgresql(postgres_url, db_rows_at, tmp_path):
    (tmp_path / "bot.yaml").write_text("discord:\n  rate_limit_messages: 100\n")
    users = {300 + n: f"fighter{n}" for n in range(2 * MESSAGES)}
    guild_of_shard = {shard_of(GUILD_ID, 2): GUILD_ID, shard_of(SECOND_GUILD, 2): SECOND_GUILD}
    outputs: dict[int, list[str]] = {0: [], 1: []}

    async def main() -> Emulator:
        emulator = await Emulator(channels={GENERAL: "general", DOJO: "dojo"}, users=users,
                                  guilds={GUILD_ID: "Butterfly Mansion", SECOND_GUILD: "Mountain Dojo"},
                                  channel_guilds={DOJO: SECOND_GUILD}).start()
        processes.update({shard: await start_bot(emulator, shard, postgres_url, tmp_path) for shard in (0, 1)})
        try:
            await asyncio.gather(*(wait_for_line(p, "connected as", outputs[shard]) for shard, p in processes.items()))
            assert sorted(s.shard for s in emulator.sessions) == [(0, 2), (1, 2)]
            assert {s.shard[0]: s.guilds for s in emulator.sessions} == {k: [g] for k, g in guild_of_shard.items()}

            said = [emulator.user_says(channel, user, f"{name} challenges you in {channel}!", mention_bot=True)
                    for n, (user, name) in enumerate(users.items()) for channel in [(GENERAL, DOJO)[n % 2]]]
            await asyncio.gather(*said)
            for channel in (GENERAL, DOJO):
                for n in range(MESSAGES):
                    await emulator.wait_for_bot_message(channel, after=n, timeout=120)
            for n, posted in enumerate(emulator.posted):
                answer = await emulator.click(posted.channel_id, 300 + n, posted.message, emulator.buttons(posted.message)["👍"])
                assert "You rated this reply 👍" in answer.content
            return emulator
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
            for shard, process in processes.items():
                rest, _ = await asyncio.wait_for(process.communicate(), timeout=60)
                outputs[shard].append(rest.decode())
            await emulator.stop()

    processes = {}
    emulator = asyncio.run(main())
    logs = "".join(outputs[0] + outputs[1])
    assert "Traceback" not in logs and "ERROR" not in logs, logs
    assert [p.returncode for p in processes.values()] == [0, 0] and logs.count("stopping (signal received)") == 2
    assert list(emulator.synced) == ["global"] and "synced" in "".join(outputs[0]) and "synced" not in "".join(outputs[1])
    assert sorted(p.channel_id for p in emulator.posted) == sorted([GENERAL] * MESSAGES + [DOJO] * MESSAGES)

    rows = db_rows_at(postgres_url)
    assert rows("select version_num from alembic_version") != []
    for channel in (GENERAL, DOJO):
        assert rows(f"select count(*) from messages where channel_id = {channel} and not by_bot") == [(MESSAGES,)]
        assert rows(f"select count(*) from messages where channel_id = {channel} and by_bot and discord_id is not null") == [(MESSAGES,)]
    assert rows("select count(*), count(distinct message_id) from ratings") == [(2 * MESSAGES, 2 * MESSAGES)]
