"""The reply pipeline under faults, on a real SQLite file and the real worker with a fake model:
a request stuck waiting for the model gets an in-character answer after `reply_timeout_s`, and a
reply that could not be posted leaves no trace in the history."""

from __future__ import annotations

import asyncio
import time

from bot.service.pipeline import TOO_SLOW, ChatPipeline
from bot.service.worker import ModelWorker
from core.db.database import connect
from core.db.history import History
from core.settings import ChatSettings


def test_a_request_waiting_for_the_model_times_out(fake_served_with, persona, db_url):
    async def main():
        worker = ModelWorker(fake_served_with(delay_s=3.0)).start()
        async with connect(db_url) as sessions:
            history = History(sessions)
            pipeline = ChatPipeline(history, worker, persona, settings=ChatSettings(reply_timeout_s=0.5))
            started = time.monotonic()
            reply = await pipeline.respond(1, 7, "Kanao", "Are you awake?")
            waited = time.monotonic() - started
            stored = await history.recent(1)
        await asyncio.to_thread(worker.stop)
        return reply, waited, stored

    reply, waited, stored = asyncio.run(main())
    assert reply.text == TOO_SLOW and not reply.from_model
    assert waited < 2.5  # answered before the model was done
    assert [(m.content, m.by_bot) for m in stored] == [("Are you awake?", False)]  # the message is kept, no reply


def test_a_reply_that_could_not_be_posted_leaves_no_trace(fake_served, persona, db_url):
    async def main():
        worker = ModelWorker(fake_served).start()
        async with connect(db_url) as sessions:
            history = History(sessions)
            pipeline = ChatPipeline(history, worker, persona)
            attempts = []

            async def discord_is_down(text, reply_id):
                attempts.append((text, reply_id))
                return None  # nothing was posted

            reply = await pipeline.respond(1, 7, "Kanao", "Hello?", deliver=discord_is_down)
            stored = await history.recent(1)
        await asyncio.to_thread(worker.stop)
        return reply, attempts, stored

    reply, attempts, stored = asyncio.run(main())
    assert reply.from_model and reply.message_id is None
    assert len(attempts) == 1 and attempts[0][1] is not None  # it was stored (for its buttons) before the attempt ...
    assert [(m.content, m.by_bot) for m in stored] == [("Hello?", False)]  # ... and is gone after it
