"""The model worker and the reply pipeline with the real embedded model."""

import asyncio

import pytest

from bot.chat import TOO_LONG, WAIT_YOUR_TURN, ChatPipeline, ChatSettings
from bot.db.database import make_engine, sessions, upgrade
from bot.engine import EngineBusy, ReplyEngine
from bot.history import History
from bot.model_resolver import EMBEDDED_SPEC, load_model
from bot.prompt import Turn, generation_prompt


@pytest.fixture(scope="module")
def model(model_cache):
    return load_model(EMBEDDED_SPEC, "nf4")


def test_requests_from_many_channels_are_batched_and_answered_in_order(model, tokenizer, persona):
    questions = [f"Say the number {i}." for i in range(8)]

    async def main():
        engine = ReplyEngine(model, tokenizer, max_batch=8, max_wait_s=0.2, max_new_tokens=12).start()
        try:
            prompts = [generation_prompt(tokenizer, persona, [Turn(q)]) for q in questions]
            return await asyncio.gather(*(engine.generate(p) for p in prompts)), engine.batches
        finally:
            engine.stop()

    results, batches = asyncio.run(main())
    assert len(results) == 8 and all(r.new_tokens > 0 for r in results)
    assert max(batches) > 1 and sum(batches) == 8  # generated together, not one by one
    from bot.generate import generate
    expected = generate(model, tokenizer, [generation_prompt(tokenizer, persona, [Turn(questions[3])])], 12)[0]
    assert results[3].text == expected.text  # each caller gets its own reply, unchanged by batching


def test_full_queue_is_refused_at_once_and_a_failure_does_not_kill_the_worker(model, tokenizer):
    class Broken:
        device = model.device

        def generate(self, **kwargs):
            raise RuntimeError("boom")

    async def main():
        engine = ReplyEngine(Broken(), tokenizer, max_queue=2, max_wait_s=0.3).start()
        try:
            first = asyncio.ensure_future(engine.generate("a"))
            second = asyncio.ensure_future(engine.generate("b"))
            await asyncio.sleep(0)
            with pytest.raises(EngineBusy):
                await engine.generate("c")
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert all(isinstance(o, RuntimeError) for o in outcomes)
            with pytest.raises(RuntimeError):  # the worker is still there and still answering
                await engine.generate("d")
        finally:
            engine.stop()

    asyncio.run(main())


def migrated_history(tmp_path):
    """A History on a fresh database file migrated to head, and its engine to dispose of."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    db = make_engine(url)
    return History(sessions(db)), db


def test_pipeline_stores_both_sides_keeps_channels_apart_and_answers_in_character(model, tokenizer, persona, tmp_path):
    history, db = migrated_history(tmp_path)  # Alembic runs its own event loop: before ours

    async def main():
        engine = ReplyEngine(model, tokenizer, max_new_tokens=24, version="v0042").start()
        pipeline = ChatPipeline(history, engine, tokenizer, persona, settings=ChatSettings(max_input_chars=200))
        try:
            a, b = await asyncio.gather(pipeline.respond(1, 7, "Kanao", "Who are you?"),
                                        pipeline.respond(2, 8, "Genya", "What is the capital of France?"))
            long = await pipeline.respond(1, 7, "Kanao", "x" * 500)
            one, two = await history.recent(1), await history.recent(2)
        finally:
            engine.stop()
            await db.dispose()
        return a, b, long, one, two

    a, b, long, one, two = asyncio.run(main())
    assert a.from_model and b.from_model and a.text and "Paris" in b.text
    assert [(m.author_name, m.by_bot) for m in one] == [("Kanao", False), ("Inosuke", True), ("Kanao", False)]
    assert one[1].content == a.text and [m.content for m in two] == ["What is the capital of France?", b.text]
    assert long.text == TOO_LONG and not long.from_model and one[2].content == "x" * 500  # stored, not lost


def test_a_full_queue_gets_wait_your_turn_and_the_message_is_kept(model, tokenizer, persona, tmp_path):
    history, db = migrated_history(tmp_path)

    async def main():
        engine = ReplyEngine(model, tokenizer, max_queue=0)  # every request finds the queue full
        reply = await ChatPipeline(history, engine, tokenizer, persona).respond(5, 9, "Aoi", "Hello?")
        stored = await history.recent(5)
        await db.dispose()
        return reply, stored

    reply, stored = asyncio.run(main())
    assert reply.text == WAIT_YOUR_TURN and not reply.from_model
    assert [m.content for m in stored] == ["Hello?"]
