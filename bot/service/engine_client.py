"""The model served by an OpenAI-compatible engine (vLLM, SGLang, llama-server...) over HTTP,
behind the same interface as the in-process worker (bot/service/worker.py), so the pipeline,
the adapter follower and /inosuke work with either.

The bot still renders every prompt with the one prompt builder (core/prompt.py), with the base
model's tokenizer loaded locally (no weights), and sends it raw to `/v1/completions`: the engine
never applies a chat template of its own, whatever serves. The model named in the request is the
adapter's version (the engine serves every loaded LoRA under its name) or the base model.

Guarantees, as with the local worker: order per channel (the pipeline's channel lock), a bounded
number of requests in flight (`max_in_flight`; beyond `max_queue` waiting, WorkerBusy at once),
the adapter version that wrote each reply returned with it, an in-character answer when the
engine is busy (503/429: WorkerBusy), slow or down (EngineUnavailable), and recovery when it comes
back: every request stands alone, and an adapter the engine forgot (it was restarted) is loaded
into it again before the request is retried once.

Adapters change at run time through vLLM's `/v1/load_lora_adapter` and `/v1/unload_lora_adapter`
(the engine must run with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora): load the new
version under its name, switch replies to it, let the requests already sent to the old one
finish, then unload the old one. The adapter folder must be readable by the engine at the same path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bot.service.worker import RenderedForAnotherModel, WorkerBusy
from core.decoding import GREEDY, Decoding
from core.generate import Generation
from core.registry import AdapterInfo, read_adapter
from core.served_model import ServedModel
from core.settings import OpenAIEngineSettings

log = logging.getLogger(__name__)


def public_address(url: str) -> str:
    """scheme://host:port of `url`: no user name, password, path or query."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number: said nowhere
        port = None
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


class EngineUnavailable(Exception):
    """The engine is down, too slow, or failed the request (the message says which)."""


@dataclass
class EngineStats:
    """Counts, not a log."""

    requests: int = 0  # answered
    failures: int = 0  # down, too slow, or an error
    busy: int = 0  # refused: the engine (503/429) or our queue was full
    largest_in_flight: int = 0
    adapter_reloads: int = 0  # adapters loaded again into a restarted engine
    restarts: int = 0  # engine processes the bot owns (llama-server) started again after they died
    hung: int = 0  # of those, killed first because they were alive but stopped answering /health


def completion_request(prompt: str, model: str, *, max_tokens: int, stop_token_id: int | None, stop_text: str | None,
                       temperature: float = 0.0, top_p: float = 1.0, min_p: float = 0.0,
                       repetition_penalty: float = 1.1, seed: int | None = None) -> dict:
    """The body of one `/v1/completions` request: the rendered prompt sent raw, stopping at the
    end of the persona's turn, with the decoding settings. `stop_token_ids` and
    `repetition_penalty` are vLLM's extensions (llama-server reads `repeat_penalty`; both are sent)."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
            "repetition_penalty": repetition_penalty, "repeat_penalty": repetition_penalty, "stream": False}
    if min_p > 0:
        body["min_p"] = min_p
    if stop_token_id is not None:
        body["stop_token_ids"] = [stop_token_id]
    if stop_text:
        body["stop"] = [stop_text]
    if seed is not None:
        body["seed"] = seed
    return body


def remote_served(adapter: Path | AdapterInfo | None, base: str) -> ServedModel:
    """What the bot needs locally to render prompts for the engine's model: the base model's
    tokenizer (no weights), the adapter's version and prompt format."""
    from core.model_resolver import load_tokenizer

    if adapter is None:
        return ServedModel(None, load_tokenizer(base), None, "chat", base, "none")
    info = adapter if isinstance(adapter, AdapterInfo) else read_adapter(adapter)
    return ServedModel(None, load_tokenizer(info.base_model), info.version, info.prompt_format, info.base_model, "none",
                       info.path)


class OpenAIEngine:
    remote = True  # the training lock never unloads anything: the model is not in this process
    # Fields added to every completion request: an engine's own extensions (llama-server's below).
    extra_body: dict = {}

    def __init__(self, settings: OpenAIEngineSettings, served: ServedModel, *, decoding: Decoding = GREEDY,
                 max_queue: int = 32):
        self.settings, self.served = settings, served
        self.decoding, self.max_queue = decoding, max_queue
        self.stats = EngineStats()
        self.api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        self._session = None
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0  # queued here or in flight
        self._in_flight = 0
        self._by_version: Counter[str | None] = Counter()  # requests in flight per adapter version
        self._loaded: set[str] = set()  # adapter versions this bot knows the engine holds
        self._adapter_lock: asyncio.Lock | None = None
        self._base_name: str | None = settings.model_name

    @property
    def version(self) -> str | None:
        return self.served.version if self.served is not None else None

    @property
    def queue_length(self) -> int:
        return self._waiting

    def describe(self) -> str:
        """For /inosuke (anyone may ask) and the log: the engine's address without what a URL
        may carry besides (`https://user:password@host/...?key=...`)."""
        return f"OpenAI-compatible engine at {public_address(self.settings.base_url)} (base {self._base_name or 'not asked yet'})"

    def start(self) -> OpenAIEngine:
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the worker's interface -------------------------------------------------------------

    def forget_conversations(self) -> None:
        """Nothing cached here: the engine's own prefix cache holds only what prompts share and
        serves only a prompt that begins with the very same tokens."""

    async def between_batches(self, action: Callable[[], object]):
        """No batch runs here (the engine batches): the action runs at once."""
        return action()

    def install(self, served: ServedModel | None) -> None:
        self.served = served

    @property
    def max_new_tokens(self) -> int:
        return self.decoding.max_new_tokens

    async def generate(self, prompt: str, rendered_for: ServedModel, prefix: str | None = None,
                       seed: int | None = None) -> Generation:
        """`prefix` (the card's text) is the in-process worker's cache hint; engines cache
        prefixes themselves (vLLM's prefix caching, llama-server's cache_prompt)."""
        if rendered_for is not self.served:
            raise RenderedForAnotherModel
        if self._waiting >= self.max_queue:
            self.stats.busy += 1
            raise WorkerBusy
        self._waiting += 1
        try:
            async with self._semaphore():
                return await self._complete(prompt, rendered_for, seed)
        finally:
            self._waiting -= 1

    # -- adapters -----------------------------------------------------------------------------

    async def switch_adapter(self, info: AdapterInfo | None) -> None:
        """Serve `info` (None: the bare base): load it into the engine, switch replies to it, let
        the requests sent to the old version finish, then unload the old one. A load that fails
        raises and leaves the old version serving."""
        old = self.served
        if info is not None:
            await self._ensure_loaded(info.version, info.path)
        served = await asyncio.to_thread(remote_served, info, old.base if info is None else info.base_model)
        self.install(served)
        if old.version is not None and old.version != served.version:
            deadline = time.monotonic() + self.settings.request_timeout_s
            while self._by_version[old.version] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self._unload(old.version)

    async def _ensure_loaded(self, version: str, path: Path) -> None:
        async with self._lock():
            if version in self._loaded:
                return
            status, body = await self._post("/v1/load_lora_adapter", {"lora_name": version, "lora_path": str(path)},
                                            self.settings.request_timeout_s)
            if status != 200 and "already" not in str(body).lower():
                raise EngineUnavailable(f"the engine would not load adapter {version} from {path}: HTTP {status} {_message(body)}")
            self._loaded.add(version)
            log.info("adapter %s loaded into the engine", version)

    async def _unload(self, version: str) -> None:
        self._loaded.discard(version)
        try:
            status, body = await self._post("/v1/unload_lora_adapter", {"lora_name": version}, self.settings.request_timeout_s)
        except EngineUnavailable as exc:
            log.warning("could not unload adapter %s from the engine: %s", version, exc)
            return
        if status != 200:
            log.warning("could not unload adapter %s from the engine: HTTP %s %s", version, status, _message(body))
        else:
            log.info("adapter %s unloaded from the engine", version)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _complete(self, prompt: str, served: ServedModel, seed: int | None = None) -> Generation:
        version = served.version
        self._in_flight += 1
        self._by_version[version] += 1
        self.stats.largest_in_flight = max(self.stats.largest_in_flight, self._in_flight)
        try:
            for attempt in range(2):
                if version is not None:
                    await self._ensure_loaded(version, served.adapter_path)
                tokenizer = served.tokenizer
                body = completion_request(prompt, version or await self._base_model(), max_tokens=self.max_new_tokens,
                                          stop_token_id=tokenizer.eos_token_id, stop_text=tokenizer.eos_token,
                                          temperature=self.decoding.temperature, top_p=self.decoding.top_p,
                                          min_p=self.decoding.min_p, repetition_penalty=self.decoding.repetition_penalty,
                                          seed=seed if seed is not None and self.decoding.sampling else self.decoding.seed_for(prompt)
                                          ) | self.extra_body
                status, answer = await self._request("POST", "/v1/completions", body, self.settings.request_timeout_s,
                                                     self._url_for(version))
                if status == 404 and version is not None and attempt == 0:
                    # The engine no longer knows the adapter: it was restarted. Load it again, once.
                    log.warning("the engine lost adapter %s (restarted?): loading it again", version)
                    self._loaded.discard(version)
                    self.stats.adapter_reloads += 1
                    continue
                if status in (429, 503):
                    self.stats.busy += 1
                    raise WorkerBusy
                if status != 200:
                    raise EngineUnavailable(f"the engine answered HTTP {status}: {_message(answer)}")
                try:
                    choice = answer["choices"][0]
                    text = choice["text"]
                    tokens = int((answer.get("usage") or {}).get("completion_tokens") or 0)
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise EngineUnavailable(f"the engine's answer is not a completion ({exc!r}): {str(answer)[:200]}") from None
                self.stats.requests += 1
                return Generation(text.strip(), tokens, choice.get("finish_reason") == "stop", adapter_version=version)
            raise EngineUnavailable(f"the engine does not serve adapter {version} even after loading it again")
        except EngineUnavailable:
            self.stats.failures += 1
            raise
        finally:
            self._in_flight -= 1
            self._by_version[version] -= 1

    async def _base_model(self) -> str:
        """The engine's name for the base model: configured, else the first base its /v1/models lists."""
        if self._base_name is None:
            status, body = await self._request("GET", "/v1/models", None, self.settings.connect_timeout_s * 3)
            try:
                models = body["data"]
                bases = [m["id"] for m in models if not m.get("parent")] or [m["id"] for m in models]
                self._base_name = bases[0]
            except (KeyError, IndexError, TypeError):
                raise EngineUnavailable(f"the engine's /v1/models lists no model (HTTP {status}: {str(body)[:200]})") from None
        return self._base_name

    def _url_for(self, version: str | None) -> str:
        """The engine that serves `version`: one address for every adapter here."""
        return self.settings.base_url

    async def _post(self, path: str, body: dict, timeout_s: float) -> tuple[int, object]:
        return await self._request("POST", path, body, timeout_s)

    async def _request(self, method: str, path: str, body: dict | None, timeout_s: float,
                       base_url: str | None = None) -> tuple[int, object]:
        import aiohttp

        session = self._client()
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self.settings.connect_timeout_s)
        base_url = base_url or self.settings.base_url
        url = base_url.rstrip("/") + path
        try:
            async with session.request(method, url, json=body, timeout=timeout) as response:
                text = await response.text()
                try:
                    payload = await response.json(content_type=None) if text else None
                except ValueError:
                    payload = text
                return response.status, payload
        except asyncio.TimeoutError:
            raise EngineUnavailable(f"the engine at {base_url} did not answer {path} within {timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise EngineUnavailable(f"the engine at {base_url} is unreachable ({type(exc).__name__}: {exc})") from None

    def _client(self):
        import aiohttp

        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            # One connection per request: a connection the engine dropped (it was restarted) is
            # never reused, and llama-server's keep-alive after a response was unreliable here.
            self._session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        return self._slots

    def _lock(self) -> asyncio.Lock:
        if self._adapter_lock is None:
            self._adapter_lock = asyncio.Lock()
        return self._adapter_lock


def _message(body) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message", error))[:300]
        return str(body.get("message") or body.get("detail") or body)[:300]
    return str(body)[:300]
