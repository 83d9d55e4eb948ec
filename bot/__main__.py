"""Run as: python -m bot [--config config/bot.yaml]            Discord (DISCORD_TOKEN in the environment or .env)
       python -m bot --shard-count 4 --shard-ids 0-1       this process runs shards 0 and 1 of 4 (2-3 in another)
       python -m bot --console [--say TEXT ...]            the same pipeline in the terminal, no token
       python -m bot --ask "Who are you?"                  one answer, nothing stored

The adapter is the one in service (state/adapters/current.json, set by training, retraining and
rollback; the bot follows it without a restart) unless the config or --adapter names one, or
--no-adapter asks for the bare base model. The database (INOSUKE_DATABASE_URL, default
state/inosuke.db) is migrated to the latest schema at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import time
from pathlib import Path

from core.cli import run
from core.errors import UserError

log = logging.getLogger("bot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Inosuke, the Discord bot.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--console", action="store_true", help="talk to the bot in the terminal (history kept in the database)")
    mode.add_argument("--ask", metavar="TEXT", help="answer one question in persona and exit")
    parser.add_argument("--config", type=Path, default=None, help="settings file (default: config/bot.yaml)")
    parser.add_argument("--say", action="append", default=None, metavar="TEXT", help="with --console: play these lines, then exit")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="adapter folder to pin (default: the config's, else the one in service, followed as it changes)")
    parser.add_argument("--no-adapter", action="store_true", help="use the bare base model")
    parser.add_argument("--model", default=None, help="base model without an adapter (overrides the config)")
    parser.add_argument("--card", default=None, help="persona card (overrides the config)")
    parser.add_argument("--quantization", choices=["nf4", "none"], default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--shard-count", type=shard_count, default=None, metavar="N|auto",
                        help="shards in all (overrides discord.shard_count; the same in every process)")
    parser.add_argument("--shard-ids", type=shard_ids, default=None, metavar="IDS",
                        help="the shards this process runs, e.g. 0,1 or 0-3 (overrides discord.shard_ids)")
    return parser.parse_args(argv)


def shard_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of shards or auto, got {text!r}") from None


def shard_ids(text: str) -> list[int]:
    """`0,1,5` or `0-3` (or both: `0-3,8`)."""
    ids = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            ids += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected shard numbers such as 0,1 or 0-3, got {text!r}") from None
    return ids


def settings_from(args):
    from core.settings import load_settings

    settings = load_settings(args.config)
    overrides = {k: v for k, v in (("model", args.model), ("card", args.card), ("quantization", args.quantization)) if v}
    settings = dataclasses.replace(settings, **overrides)
    if args.max_new_tokens:
        try:
            settings = dataclasses.replace(settings, decoding=dataclasses.replace(settings.decoding, max_new_tokens=args.max_new_tokens))
        except ValueError as exc:
            from core.errors import UserError

            raise UserError(f"--max-new-tokens: {str(exc).partition(': ')[2]}") from None
    shards = {k: v for k, v in (("shard_count", args.shard_count), ("shard_ids", args.shard_ids)) if v is not None}
    if shards:
        from core.settings import check_shards

        settings = dataclasses.replace(settings, discord=dataclasses.replace(settings.discord, **shards))
        check_shards(settings.discord, "--", options=True)
    return settings


def chosen_adapter(args, settings) -> Path | None:
    from core.serving_pointer import in_service

    if args.no_adapter or (args.model and not args.adapter):  # --model asks for that bare base model
        return None
    if args.adapter or settings.adapter:
        return Path(args.adapter or settings.adapter)
    return in_service()


def ask(args, settings, adapter: Path | None) -> int:
    from core.conversation import LocalConversation, transcript_turn
    from core.paths import project_path
    from core.served_model import load_served

    started = time.perf_counter()
    served = load_served(adapter, base=settings.model, quantization=settings.quantization)
    conversation = LocalConversation(project_path(settings.card), served, settings.decoding)
    loaded = time.perf_counter()
    reply, answer = conversation.say(args.ask)
    print(transcript_turn("You", args.ask), transcript_turn(conversation.name, reply), sep="\n")
    print(f"[{adapter or settings.model}, {served.quantization}: loaded in {loaded - started:.1f}s, "
          f"{answer.new_tokens} tokens in {time.perf_counter() - loaded:.1f}s]")
    return 0


async def serve(args, settings, adapter: Path | None) -> int:
    from bot.service.runtime import start_runtime

    token = None
    if not args.console:
        from core.settings import discord_token

        token = discord_token()
        if not token:
            raise UserError("DISCORD_TOKEN is not set: put the bot's token in the environment or in a .env file "
                            "(see the README), or try it offline with --console")
    runtime = await start_runtime(settings, adapter)
    follower = None
    if settings.serving.follow_registry and not (args.adapter or settings.adapter or args.no_adapter or args.model):
        from bot.service.adapter_follower import AdapterFollower

        follower = asyncio.create_task(AdapterFollower(runtime, settings.serving).run())
    try:
        if args.console:
            from bot.service.console import converse

            return await converse(runtime, args.say)
        import aiohttp
        import discord

        from bot.discord_front.client import make_client

        # run_until_stopped closes it on SIGTERM / Ctrl-C: InosukeBot.close finishes or answers
        # the replies under way, then disconnects.
        client = make_client(runtime, settings.discord)
        try:
            await run_until_stopped(client, token)
        except discord.LoginFailure:
            raise UserError("Discord rejected DISCORD_TOKEN (check the bot token in the developer portal)") from None
        except discord.PrivilegedIntentsRequired:
            raise UserError("enable the Message Content intent for the bot in the Discord developer portal") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UserError(f"cannot reach Discord ({type(exc).__name__}: {exc})") from None
        finally:
            await client.close()
        return 0
    finally:
        if follower is not None:
            follower.cancel()
        await runtime.close()


async def run_until_stopped(client, token: str) -> None:
    """Run the client until it stops, or until SIGINT or SIGTERM (Ctrl-C, systemd, a process
    manager stopping one shard's process): then close the gateway, let the replies being written
    finish and the database connections go back cleanly, instead of cancelling them mid-write."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(client.start(token))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping (signal received)")
            await client.close()
        await running  # its own error, if it stopped by itself
    finally:
        stopping.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    adapter = chosen_adapter(args, settings)
    if args.ask is not None:
        return ask(args, settings, adapter)
    return asyncio.run(serve(args, settings, adapter))


def entry() -> None:
    """Console script `inosuke-bot`."""
    raise SystemExit(run(main))


if __name__ == "__main__":
    entry()
