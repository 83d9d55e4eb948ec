"""One of several writer processes for tests/core/test_concurrent_writers.py (not a test module).

Run as: python -m tests.core.concurrent_writer URL WRITER MESSAGES GO_FILE

Writes what one bot process writes per message (the user's message, the reply, two ratings and
an approval) through the bot's own stores, with several messages in flight at once, into channels
that every writer shares; also rates one shared reply and opts one user out, as every writer does.
Waits for GO_FILE to exist first, so that all writers start together.
"""

import asyncio
import sys
import time
from pathlib import Path

from core.db.database import connect
from core.db.history import History
from core.db.ratings import THUMB_UP, Ratings

CHANNELS = [7001, 7002, 7003]  # shared by every writer; none exists before the writers start
SHARED_REPLY_CHANNEL, OPTED_OUT_USER, IN_FLIGHT = 7000, 4242, 4


async def write(url: str, writer: int, count: int) -> None:
    async with connect(url) as sessions:
        history, ratings = History(sessions), Ratings(sessions)
        shared = await ratings.latest_reply(SHARED_REPLY_CHANNEL)
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(n: int) -> None:
            async with slots:
                channel = CHANNELS[n % len(CHANNELS)]
                await history.add(channel, 100 + writer, f"writer{writer}", f"w{writer} message {n}",
                                  discord_id=writer * 1_000_000 + n, guild_id=1, channel_name=f"arena-{channel}")
                reply = await history.add(channel, 0, "Inosuke", f"w{writer} reply {n}", by_bot=True, adapter_version="v0001")
                await ratings.rate(reply, 7, THUMB_UP, via="button")
                await ratings.rate(reply, 8, 2, via="command")
                await ratings.decide(reply, 9, approved=n % 2 == 0)
                await ratings.rate(shared, 7, 1 + n % 5, via="button")  # every writer, the same user and reply

        await asyncio.gather(*(one(n) for n in range(count)))
        await ratings.forget_user(OPTED_OUT_USER)


def main(url: str, writer: str, count: str, go: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal in 60 s")
        time.sleep(0.01)
    asyncio.run(write(url, int(writer), int(count)))


if __name__ == "__main__":
    main(*sys.argv[1:])
