"""The model worker and the reply pipeline: batching across channels with the real embedded
model, a full queue, a failing batch, swaps between batches, and the pipeline's storage."""

import asyncio

import pytest

from bot.service.pipeline import TOO_LONG, WAIT_YOUR_TURN, ChatPipeline
from bot.service.worker import ModelWorker, RenderedForAnotherModel, WorkerBusy
from core.db.database import connect
from core.db.history import History
from core.generate import generate
from core.prompt import Turn, generation_prompt
from core.served_model import ServedModel
from core.settings import ChatSettings


def test_requests_from_many_channels_are_batched_and_answered_in_order(served, persona):
    questions = [f"Say the number {i}." for i in range(8)]
    prompts = [generation_prompt(served.tokenizer, persona, [Turn(q)]) for q in questions]

    async def main():
        worker = ModelWorker(served, max_batch=8, max_wait_s=0.2, max_new_tokens=12).start()
        try:
            return await asyncio.gather(*(worker.generate(p, served) for p in prompts)), worker.stats
        finally:
            worker.stop()

    results, stats = asyncio.run(main())
    assert len(results) == 8 and all(r.new_tokens > 0 and r.adapter_version == "v0007" for r in results)
    assert stats.largest > 1 and stats.requests == 8  # generated together, not one by one
    expected = generate(served.model, served.tokenizer, [prompts[3]], 12)[0]
    assert results[3].text == expected.text  # each caller gets its own reply, unchanged by batching


def test_full_queue_is_refused_at_once_and_a_failure_does_not_kill_the_worker(tokenizer):
    class Broken:
        device = "cpu"

        def __call__(self, *args, **kwargs):
            raise RuntimeError("boom")

    broken = ServedModel(Broken(), tokenizer, None, "chat", "smollm2-135m", "nf4")

    async def main():
        worker = ModelWorker(broken, max_queue=2, max_wait_s=0.3).start()
        try:
            first = asyncio.ensure_future(worker.generate("a", broken))
            second = asyncio.ensure_future(worker.generate("b", broken))
            await asyncio.sleep(0)
            with pytest.raises(WorkerBusy):
                await worker.generate("c", broken)
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert all(isinstance(o, RuntimeError) for o in outcomes)
            with pytest.raises(RuntimeError):  # the worker is still there and still answering
                await worker.generate("d", broken)
        finally:
            worker.stop()

    asyncio.run(main())


def test_a_prompt_rendered_for_a_swapped_out_model_is_never_generated_by_the_new_one(fake_served, tokenizer, persona):
    """The worker hands back a request rendered for the previous ServedModel; the pipeline renders
    it again for the new one (its own format), so nothing is generated from a stale prompt."""
    alpaca = ServedModel(fake_served.model, tokenizer, "v0002", "alpaca", "smollm2-135m", "nf4")

    async def main():
        worker = ModelWorker(fake_served, max_new_tokens=8).start()
        try:
            stale = generation_prompt(tokenizer, persona, [Turn("Hi!")], "chat")
            await worker.between_batches(lambda: worker.install(alpaca))
            with pytest.raises(RenderedForAnotherModel):
                await worker.generate(stale, fake_served)
            fresh = await ChatPipeline(None, worker, persona).generate_for([Turn("Hi!")])
            return fresh
        finally:
            worker.stop()

    generation = asyncio.run(main())
    assert generation.adapter_version == "v0002"
    assert fake_served.model.prompts == [generation_prompt(tokenizer, persona, [Turn("Hi!")], "alpaca")]


def test_pipeline_stores_both_sides_keeps_channels_apart_and_answers_in_character(served, persona, db_url):
    async def main():
        worker = ModelWorker(served, max_new_tokens=24).start()
        async with connect(db_url) as sessions:
            history = History(sessions)
            pipeline = ChatPipeline(history, worker, persona, settings=ChatSettings(max_input_chars=200))
            try:
                a, b = await asyncio.gather(pipeline.respond(1, 7, "Kanao", "Who are you?"),
                                            pipeline.respond(2, 8, "Genya", "What is the capital of France?"))
                long = await pipeline.respond(1, 7, "Kanao", "x" * 500)
                one, two = await history.recent(1), await history.recent(2)
            finally:
                worker.stop()
        return a, b, long, one, two

    a, b, long, one, two = asyncio.run(main())
    assert a.from_model and b.from_model and a.text and "Paris" in b.text
    assert [(m.author_name, m.by_bot) for m in one] == [("Kanao", False), ("Inosuke", True), ("Kanao", False)]
    assert one[1].content == a.text and [m.content for m in two] == ["What is the capital of France?", b.text]
    assert long.text == TOO_LONG and not long.from_model and one[2].content == "x" * 500  # stored, not lost


def test_a_full_queue_gets_wait_your_turn_and_the_message_is_kept(fake_served, persona, db_url):
    async def main():
        worker = ModelWorker(fake_served, max_queue=0)  # every request finds the queue full
        async with connect(db_url) as sessions:
            history = History(sessions)
            reply = await ChatPipeline(history, worker, persona).respond(5, 9, "Aoi", "Hello?")
            return reply, await history.recent(5)

    reply, stored = asyncio.run(main())
    assert reply.text == WAIT_YOUR_TURN and not reply.from_model
    assert [m.content for m in stored] == ["Hello?"]


def test_one_failing_prompt_gets_the_error_and_its_batch_mates_their_replies(tokenizer, persona, db_url):
    """Issue 11: a prompt the model fails on, generated together with seven others, fails alone
    (the pipeline's in-character apology for that user only); the others are answered."""
    from bot.service.pipeline import APOLOGY
    from tests.fakes import fake_served_model

    served = fake_served_model(tokenizer, fail_on="poison")
    lines = [f"Hello number {i}" for i in range(7)] + ["a poison line"]

    async def main():
        worker = ModelWorker(served, max_batch=8, max_wait_s=0.5, max_new_tokens=16).start()
        async with connect(db_url) as sessions:
            pipeline = ChatPipeline(History(sessions), worker, persona)
            try:
                replies = await asyncio.gather(*(pipeline.respond(100 + i, 7, "Kanao", line) for i, line in enumerate(lines)))
            finally:
                worker.stop()
        return replies, worker.stats

    replies, stats = asyncio.run(main())
    assert [r.text for r in replies[:7]] == [served.model.reply] * 7 and all(r.from_model for r in replies[:7])
    assert replies[7].text == APOLOGY and not replies[7].from_model
    assert stats.largest == 0 or stats.retried_alone == 8  # the shared prefill failed: each was tried again alone
    assert max(served.model.rows_seen) == 8  # they really were in one batch first


def test_requests_join_a_running_batch_and_leave_when_they_end(tokenizer, persona):
    """Continuous batching: a request arriving while replies are being generated joins them at
    the next step (it does not wait for them to end), and a short reply leaves before a long one."""
    from tests.fakes import fake_served_model

    served = fake_served_model(tokenizer, reply="One two three four five six seven eight nine ten eleven twelve thirteen "
                                                "fourteen fifteen sixteen seventeen eighteen nineteen twenty!")
    prompt = generation_prompt(tokenizer, persona, [Turn("Fight me!")])

    async def main():
        worker = ModelWorker(served, max_batch=8, max_wait_s=0.0, max_new_tokens=60).start()
        try:
            long = asyncio.ensure_future(worker.generate(prompt, served))
            while served.model.forwards < 3:  # the long reply is being decoded
                await asyncio.sleep(0.001)
            late = await worker.generate(prompt + "x", served)  # joins the running reply
            return await long, late, worker.stats
        finally:
            worker.stop()

    long, late, stats = asyncio.run(main())
    assert long.ended and late.ended and long.text == late.text == served.model.reply
    assert stats.largest == 2  # the second joined the running first
    assert served.model.rows_seen[-1] == 1  # the first left when it ended; the late one went on alone


def test_the_card_is_prefilled_once_per_served_model_and_again_after_a_swap_or_a_card_change(tokenizer, persona):
    """Every request starts from the card's cached keys and values; a new adapter (a new
    ServedModel) or another card gets its own, never the old one's."""
    from dataclasses import replace as changed

    from core.prompt import card_prefix
    from tests.fakes import fake_served_model

    served = fake_served_model(tokenizer)
    swapped = ServedModel(served.model, tokenizer, "v0008", "chat", "smollm2-135m", "nf4")
    other_card = changed(persona, description="A different card entirely.")

    def request(card, line):
        return generation_prompt(tokenizer, card, [Turn(line)]), card_prefix(tokenizer, card)

    async def main():
        worker = ModelWorker(served, max_wait_s=0.0, max_new_tokens=16).start()
        try:
            for line in ("one", "two", "three"):
                prompt, prefix = request(persona, line)
                assert (await worker.generate(prompt, served, prefix)).text == served.model.reply
            first = worker._decoder
            await worker.between_batches(lambda: worker.install(swapped))
            prompt, prefix = request(persona, "four")
            after_swap = await worker.generate(prompt, swapped, prefix)
            prompt, prefix = request(other_card, "five")
            await worker.generate(prompt, swapped, prefix)
            return first, worker._decoder, after_swap
        finally:
            worker.stop()

    first, second, after_swap = asyncio.run(main())
    assert first.stats.prefix_builds == 1 and first.stats.prefix_hits == 3
    assert second is not first and after_swap.adapter_version == "v0008"
    assert second.stats.prefix_builds == 2 and len(second.prefixes.entries) == 2  # the swap's card, then the new card
    assert [len(e.ids) for e in second.prefixes.entries][1] == len(tokenizer(card_prefix(tokenizer, persona))["input_ids"])


def test_a_channels_next_message_continues_its_cached_exchange_until_someone_is_forgotten(tokenizer, persona, db_url):
    """Through the real pipeline (the prompt the bot renders from what it stored), the second
    message of a channel starts from the keys and values of the first exchange; after a user asks
    to be forgotten (or a channel reset) the cached conversations are dropped."""
    from core.db.database import make_engine, sessions
    from core.db.history import History
    from tests.fakes import fake_served_model

    served = fake_served_model(tokenizer)

    async def main():
        db = make_engine(db_url)
        worker = ModelWorker(served, max_wait_s=0.0, max_new_tokens=16).start()
        try:
            pipeline = ChatPipeline(History(sessions(db)), worker, persona)
            await pipeline.respond(5, 9, "Aoi", "Hello there!")
            await pipeline.respond(5, 9, "Aoi", "How are you?")
            continued = worker.stats.history_hits
            first_entries = list(worker._decoder.histories.entries)
            worker.forget_conversations()
            await pipeline.respond(5, 9, "Aoi", "Still there?")
            return continued, first_entries, worker.stats.history_hits, list(worker._decoder.histories.entries)
        finally:
            worker.stop()
            await db.dispose()

    continued, before, hits_after, after = asyncio.run(main())
    assert continued == 1  # the second message reused the first exchange
    assert hits_after == continued  # after forgetting, the third started from the card again
    assert before and not any(entry in after for entry in before) and len(after) == 1
