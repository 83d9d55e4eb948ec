"""The real bot command (`python -m bot`, bot/__main__.py) pointed at a Discord emulator, for the
tests that run bot processes (tests/discord_front/test_shard_processes.py). Not a test module.

Run as: python -m tests.discord_front.bot_process EMULATOR_BASE_URL -- [python -m bot arguments]

The language model is the fake one (tests/fakes.py) with the real tokenizer: these tests check
what the processes store and send, not what a model writes.
"""

from __future__ import annotations

import sys


def point_discord_at(base: str) -> None:
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"{base.replace('http', 'ws', 1)}/gateway")


def serve_the_fake_model() -> None:
    import core.served_model
    from core.model_resolver import load_tokenizer
    from tests.fakes import fake_served_model

    def load_fake(adapter, *, base, quantization):
        return fake_served_model(load_tokenizer(base))

    core.served_model.load_served = load_fake  # start_runtime imports it when it runs


def main() -> None:
    base, separator, *bot_args = sys.argv[1:]
    assert separator == "--", __doc__
    point_discord_at(base)
    serve_the_fake_model()
    from bot.__main__ import entry

    sys.argv = ["python -m bot", *bot_args]
    entry()


if __name__ == "__main__":
    main()
