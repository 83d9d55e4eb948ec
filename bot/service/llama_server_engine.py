"""The model served by llama.cpp's llama-server processes that the bot starts and owns (backend:
llama-server), as the local worker owns its model.

Requests go through OpenAIEngine (bot/service/engine_client.py) unchanged: the prompt rendered by
the one prompt builder, sent raw to `/v1/completions` with the `decoding:` settings, the version
that wrote each reply returned with it, busy/slow/down answered in character.

What differs is adapters. llama-server loads a LoRA only at start (`--lora`), so each version gets
its own process: `switch_adapter` starts a NEW process on a free loopback port with the version's
LoRA GGUF (`trainer export --format lora-gguf`, found by core.paths.exported_lora_gguf), waits for
its /health, sends new requests to it, lets the requests already sent to the old process finish,
then stops the old one. Rollback is the same with an older version; no adapter serves the bare
base GGUF. A missing GGUF or a process that will not start leaves the old process serving.

A watchdog restarts the process in service when it dies (killed, crashed) or hangs (alive, but
/health unanswered `hung_after` times in a row: it is killed first): the request it was answering
gets the pipeline's in-character apology, later ones wait for the restart and are served again by
the same model and adapter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.service.engine_client import EngineUnavailable, OpenAIEngine, remote_served
from bot.service.worker import RenderedForAnotherModel
from core.decoding import GREEDY, Decoding
from core.errors import UserError
from core.paths import cache_dir, exported_lora_gguf, exports_dir, project_path
from core.registry import AdapterInfo
from core.served_model import ServedModel
from core.settings import LlamaServerSettings, OpenAIEngineSettings

log = logging.getLogger(__name__)

HOW_TO_BUILD = "run `make llama.cpp` (builds llama-server into .cache/llama.cpp/bin/), or set llama_server.binary"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lora_gguf(version: str, exports: Path | None = None) -> Path:
    """The version's LoRA GGUF, or EngineUnavailable saying how to make it."""
    found = exported_lora_gguf(version, exports)
    if found is None:
        folder = (exports or exports_dir()) / version
        raise EngineUnavailable(f"adapter {version} has no LoRA GGUF in {folder} (llama-server needs one): "
                                f"run `python -m trainer export --adapter {version} --format lora-gguf`")
    return found


@dataclasses.dataclass
class LlamaServerProcess:
    """One llama-server process: the base GGUF plus at most one LoRA, on a loopback port."""

    version: str | None  # the adapter version it serves (None: the bare base)
    lora: Path | None
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill it as a crash would (SIGKILL)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 3) -> str:
        try:
            text = [l for l in self.log_path.read_text(errors="replace").splitlines() if l.strip()]
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


def launch(settings: LlamaServerSettings, model: Path, version: str | None, lora: Path | None,
           log_dir: Path | None = None) -> LlamaServerProcess:
    """Start llama-server with `model` (+ `lora`) on a free loopback port and wait for /health;
    EngineUnavailable (with the end of its log) when it exits or is not healthy in time."""
    binary = project_path(settings.binary)
    if not os.access(binary, os.X_OK):
        raise UserError(f"llama_server.binary: {binary} is not an executable: {HOW_TO_BUILD}")
    port = free_port()
    log_dir = log_dir or cache_dir() / "llama-server"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{version or 'base'}-{port}.log"
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-t", str(settings.threads), "-np", str(settings.parallel), "-c", str(settings.context_size), "--no-webui"]
    if lora is not None:
        command += ["--lora", str(lora)]
    with open(log_path, "ab") as out:
        # Its own process group: stop() and kill() reach it and nothing else.
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LlamaServerProcess(version, lora, port, popen, log_path)
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise EngineUnavailable(f"llama-server for {version or 'the base model'} exited with code "
                                    f"{popen.returncode} at start: {server.tail()} (log: {log_path})")
        if healthy(server.url):
            return server
        time.sleep(0.2)
    server.stop()
    raise EngineUnavailable(f"llama-server for {version or 'the base model'} was not healthy within "
                            f"{settings.start_timeout_s:g} s (log: {log_path})")


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False  # refused, or 503 while the model loads


class LlamaServerEngine(OpenAIEngine):
    def __init__(self, settings: LlamaServerSettings, served: ServedModel, *, decoding: Decoding = GREEDY,
                 max_queue: int = 32, exports: Path | None = None, log_dir: Path | None = None,
                 watch_s: float = 0.5):
        from core.model_resolver import embedded_gguf

        # Requests are sent as to any OpenAI-compatible engine; the address is the serving process's.
        client = OpenAIEngineSettings(base_url="http://127.0.0.1:9", request_timeout_s=settings.request_timeout_s,
                                      max_in_flight=settings.parallel)
        super().__init__(client, served, decoding=decoding, max_queue=max_queue)
        self.server_settings, self.exports, self.log_dir, self.watch_s = settings, exports, log_dir, watch_s
        # llama-server's extensions: the repetition penalty over the whole context, prompt included,
        # as the in-process worker applies it (its default is the last 64 tokens; -1 is refused), and
        # its prompt cache for the persona card every prompt opens with.
        self.extra_body = {"repeat_last_n": settings.context_size, "cache_prompt": True}
        self.model = project_path(settings.model) if settings.model else embedded_gguf()
        self._base_name = self.model.name
        self.processes: dict[str | None, LlamaServerProcess] = {}  # by the version each serves
        self._watchdog: asyncio.Task | None = None
        self._unanswered = 0  # /health probes of the process in service unanswered in a row
        self._spawning: set[asyncio.Future] = set()  # processes being started (in threads)

    @property
    def process(self) -> LlamaServerProcess | None:
        """The process serving the version in service."""
        return self.processes.get(self.version)

    def describe(self) -> str:
        process = self.process
        where = process.url if process else "(not running)"
        lora = process.lora.name if process and process.lora else "none"
        return f"llama-server at {where} (model {self.model.name}, LoRA {lora})"

    def start(self) -> LlamaServerEngine:
        """Start the process for the version in service (blocking; before the event loop serves)."""
        if not self.model.is_file():
            raise UserError(f"llama_server.model: no such GGUF file {self.model}")
        try:
            self.processes[self.version] = self._launch(self.version)
        except EngineUnavailable as exc:
            raise UserError(str(exc)) from None
        log.info("llama-server serving %s on %s", self.version or "the base model", self.process.url)
        return self

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        processes, self.processes = list(self.processes.values()), {}
        for spawn in list(self._spawning):  # a start the bot's shutdown interrupted still ends with a process
            try:
                processes.append(await spawn)
            except Exception:
                pass
        for process in processes:
            await asyncio.to_thread(process.stop)
        await super().close()

    def _launch(self, version: str | None) -> LlamaServerProcess:
        lora = lora_gguf(version, self.exports) if version is not None else None
        return launch(self.server_settings, self.model, version, lora, self.log_dir)

    async def _spawn(self, version: str | None) -> LlamaServerProcess:
        """_launch in a thread. Shielded: if the awaiting task is cancelled (shutdown), the start
        goes on and close() stops the process it made, instead of it outliving the bot."""
        spawn = asyncio.ensure_future(asyncio.to_thread(self._launch, version))
        self._spawning.add(spawn)
        try:
            process = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            raise  # left in _spawning for close()
        except BaseException:
            self._spawning.discard(spawn)
            raise
        self._spawning.discard(spawn)
        return process

    # -- adapters: a new process per version ----------------------------------------------------

    async def switch_adapter(self, info: AdapterInfo | None) -> None:
        """Serve `info` (None: the bare base) from a new process, then stop the old one once the
        requests sent to it are answered. A missing GGUF or a failed start raises, and the old
        process keeps serving."""
        self._ensure_watchdog()
        old = self.served
        version = info.version if info is not None else None
        served = await asyncio.to_thread(remote_served, info, old.base if info is None else info.base_model)
        async with self._lock():
            process = await self._spawn(version)
        replaced = self.processes.get(version)  # the same version started again: its old process goes too
        self.processes[version] = process
        self.install(served)
        log.info("llama-server for %s started on %s; replies switched to it", version or "the base model", process.url)
        if replaced is not None:
            await asyncio.to_thread(replaced.stop)
        if old.version == version:
            return
        deadline = time.monotonic() + self.settings.request_timeout_s
        while self._by_version[old.version] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        retired = self.processes.pop(old.version, None)
        if retired is not None:
            await asyncio.to_thread(retired.stop)
            log.info("llama-server for %s stopped", old.version or "the base model")

    async def _ensure_loaded(self, version: str, path: Path) -> None:
        """Nothing to load at run time: the process was started with the version's LoRA."""

    def _url_for(self, version: str | None) -> str:
        process = self.processes.get(version)
        return process.url if process is not None else self.settings.base_url  # none: refused, an apology

    # -- the watchdog ---------------------------------------------------------------------------

    async def _complete(self, prompt: str, served: ServedModel, seed: int | None = None):
        self._ensure_watchdog()
        if served is not self.served and served.version not in self.processes:
            # Queued for a version whose process has stopped since: the pipeline renders it again
            # for the version in service.
            raise RenderedForAnotherModel
        await self._ensure_running(served.version)
        return await super()._complete(prompt, served, seed)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_s)
            try:
                await self._kill_if_hung()
                await self._ensure_running(self.version)
            except Exception as exc:  # tried again at the next round; replies get apologies meanwhile
                log.error("could not restart llama-server for %s: %s", self.version or "the base model", exc)
                await asyncio.sleep(5)

    async def _kill_if_hung(self) -> None:
        """A process that is alive but does not answer /health (stopped, deadlocked, swapping) would
        keep every reply waiting until its timeout: after `hung_after` unanswered probes in a row it
        is killed, and _ensure_running starts it again."""
        process = self.process
        if process is None or not process.alive():
            self._unanswered = 0
            return
        if await asyncio.to_thread(healthy, process.url, self.server_settings.health_timeout_s):
            self._unanswered = 0
            return
        if process is not self.process:
            return  # switched while the probe waited: the new process gets its own probes
        self._unanswered += 1
        if self._unanswered >= self.server_settings.hung_after:
            log.warning("llama-server for %s (pid %d) has not answered /health %d times in a row: killing it",
                        process.version or "the base model", process.pid, self._unanswered)
            self._unanswered = 0
            self.stats.hung += 1
            await asyncio.to_thread(process.kill)

    async def _ensure_running(self, version: str | None) -> None:
        """Restart the process in service if it died (a retired version's process is not restarted)."""
        if version != self.version:
            return
        process = self.processes.get(version)
        if process is not None and process.alive():
            return
        async with self._lock():
            process = self.processes.get(version)
            if version != self.version or (process is not None and process.alive()):
                return  # restarted or switched while this waited
            code = process.process.returncode if process is not None else None
            log.warning("llama-server for %s is gone (exit code %s): starting it again", version or "the base model", code)
            self.processes[version] = await self._spawn(version)
            self.stats.restarts += 1
