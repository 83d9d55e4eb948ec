"""Where the bot loads a model: on a thread that ends afterwards, never on one that lives on.

torch's OpenMP keeps helper threads for every thread that ran a parallel region until that
thread exits; with more of them than cores it stops spin-waiting and the worker's decoding steps
ran about 1.4x slower (core/passing_thread.py). asyncio.to_thread's executor threads live on."""

import asyncio
import threading

import pytest

from core.passing_thread import in_passing_thread, run_in_passing_thread


def test_the_bot_loads_its_model_on_a_thread_that_ends(tokenizer, db_url, monkeypatch):
    import core.served_model
    from bot.service.runtime import start_runtime
    from core.settings import BotSettings
    from tests.fakes import fake_served_model

    loaders = []

    def load_fake(adapter, *, base, quantization):
        loaders.append(threading.current_thread())
        return fake_served_model(tokenizer)

    monkeypatch.setattr(core.served_model, "load_served", load_fake)  # start_runtime imports it when it runs

    async def main():
        runtime = await start_runtime(BotSettings(), None, db_url)
        try:
            assert (await runtime.pipeline.respond(1, 2, "tanjiro", "Hi!")).text  # the worker serves it
            [loader] = loaders
            assert loader is not threading.main_thread()
            loader.join(timeout=5)  # while the bot runs (asyncio.run would end an executor's threads too)
            assert not loader.is_alive()
        finally:
            await runtime.close()

    asyncio.run(main())


def test_passing_threads_return_results_and_raise_errors_in_the_caller():
    assert run_in_passing_thread(lambda a, b=1: a + b, 2, b=3) == 5
    with pytest.raises(ValueError, match="bad card"):
        run_in_passing_thread(lambda: (_ for _ in ()).throw(ValueError("bad card")))

    async def main():
        loop_ran = []
        ticker = asyncio.get_running_loop().call_later(0.01, loop_ran.append, True)
        assert await in_passing_thread(lambda: threading.Event().wait(0.1) or threading.current_thread()) \
            is not threading.main_thread()
        assert loop_ran  # the event loop stayed live while the thread worked
        ticker.cancel()
        with pytest.raises(KeyError):
            await in_passing_thread(dict().__getitem__, "missing")

    asyncio.run(main())
