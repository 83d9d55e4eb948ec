"""A small fake OpenAI-compatible engine on loopback (aiohttp.web), for the tests whose assertions
do not depend on the model's text: faults (down, slow, 503), the bound on requests in flight, and
the adapter endpoints as vLLM has them (/v1/load_lora_adapter, /v1/unload_lora_adapter, a 404
for a model it does not serve, adapters forgotten on restart). Not a test module; the real
engine's tests are tests/service/test_vllm_engine_e2e.py."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

BASE = "fake-base"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeEngine:
    def __init__(self, port: int | None = None, reply: str = "HAH! Lord Inosuke heard you!"):
        self.port = port or free_port()
        self.reply = reply
        self.mode = "ok"  # ok | slow | busy
        self.delay_s = 0.0  # added to every completion (in mode ok)
        self.completions: list[dict] = []  # every completion request body, in arrival order
        self.calls: list[tuple[str, str]] = []  # (endpoint, lora_name) of adapter loads and unloads, in order
        self.adapters: dict[str, str] = {}  # name -> path
        self.in_flight = self.most_in_flight = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/load_lora_adapter", self._load)
        app.router.add_post("/v1/unload_lora_adapter", self._unload)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Down, as a killed engine is: connections refused; loaded adapters are forgotten."""
        if self._runner is not None:
            self._stopping.set()  # a slow answer in progress ends with the server, as it would
            await self._runner.cleanup()
            self._runner = None
        self.adapters.clear()

    async def _models(self, request):
        data = [{"id": BASE, "parent": None}] + [{"id": name, "parent": BASE} for name in self.adapters]
        return web.json_response({"object": "list", "data": data})

    async def _load(self, request):
        body = await request.json()
        self.calls.append(("load", body["lora_name"]))
        if body["lora_name"] in self.adapters:
            return web.json_response({"error": {"message": f"The lora adapter '{body['lora_name']}' has already been loaded."}}, status=400)
        self.adapters[body["lora_name"]] = body["lora_path"]
        return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    async def _unload(self, request):
        body = await request.json()
        self.calls.append(("unload", body["lora_name"]))
        if self.adapters.pop(body["lora_name"], None) is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return web.Response(text="Success")

    async def _completion(self, request):
        body = await request.json()
        if self.mode == "busy":
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        if body["model"] != BASE and body["model"] not in self.adapters:
            return web.json_response({"error": {"message": f"The model `{body['model']}` does not exist.", "code": 404}}, status=404)
        self.completions.append(body)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.mode == "slow":
                await self._stopping.wait()
            else:
                await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return web.json_response({"object": "text_completion", "model": body["model"],
                                  "choices": [{"index": 0, "text": " " + self.reply, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 7}})
