"""A protocol-level Discord emulator for tests: the REST routes the bot calls and a gateway
websocket (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, dispatches), served by
aiohttp on loopback, so that the real discord.py client runs unchanged against it.

Point discord.py at it with `emulator.patch_discord()` (Route.BASE and
DiscordWebSocket.DEFAULT_GATEWAY). Tests make users talk with `user_says(...)` and read what the
bot posted with `wait_for_bot_message(...)`; `drop_gateway()` and `rate_limit_next(n)` inject
the failures a real bot meets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import WSMsgType, web

BOT_ID = 900_000_000_000_000_001
APP_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_010
EVERYONE_ROLE = GUILD_ID
_ids = itertools.count(1_000_000_000_000_000_000)


def snowflake() -> int:
    return next(_ids)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def json_reply(data, status: int = 200, headers: dict | None = None) -> web.Response:
    """JSON as Discord sends it: discord.py parses a body only when the content type is exactly
    `application/json` (aiohttp's json_response would add a charset)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def user_json(user_id: int, name: str, bot: bool = False) -> dict:
    return {"id": str(user_id), "username": name, "global_name": name, "discriminator": "0", "avatar": None, "bot": bot}


@dataclass
class PostedMessage:
    channel_id: int
    id: int
    content: str
    payload: dict  # what the bot sent, allowed_mentions included


@dataclass
class Emulator:
    channels: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    posted: list[PostedMessage] = field(default_factory=list)
    typing: list[int] = field(default_factory=list)
    identifies: int = 0
    resumes: int = 0

    def __post_init__(self):
        self.app = web.Application()
        self.app.add_routes([
            web.get("/gateway", self.gateway),
            web.get("/api/v10/users/@me", self.me),
            web.get("/api/v10/oauth2/applications/@me", self.application),
            web.get("/api/v10/gateway", self.gateway_url),
            web.post("/api/v10/channels/{channel_id}/messages", self.create_message),
            web.post("/api/v10/channels/{channel_id}/typing", self.trigger_typing),
        ])
        self._sockets: list[web.WebSocketResponse] = []
        self._events: list[tuple[int, str, dict]] = []  # (sequence, type, data) for RESUME replays
        self._sequence = 0
        self._session = "emulated-session"
        self._rate_limited = 0
        self._posted_event = asyncio.Event()
        self.rate_limited_hits = 0

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> Emulator:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def patch_discord(self, monkeypatch) -> None:
        import discord.gateway
        import discord.http
        import yarl

        monkeypatch.setattr(discord.http.Route, "BASE", f"{self.base}/api/v10")
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f"ws://127.0.0.1:{self.port}/gateway"))

    # ---- REST ------------------------------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        return json_reply(user_json(BOT_ID, "Inosuke", bot=True))

    async def application(self, request: web.Request) -> web.Response:
        return json_reply({
            "id": str(APP_ID), "name": "Inosuke", "description": "", "icon": None, "bot_public": True,
            "bot_require_code_grant": False, "owner": user_json(BOT_ID - 100, "owner"), "verify_key": "0" * 64,
            "flags": 0, "team": None, "rpc_origins": [], "summary": "", "interactions_endpoint_url": None,
        })

    async def gateway_url(self, request: web.Request) -> web.Response:
        return json_reply({"url": f"ws://127.0.0.1:{self.port}/gateway"})

    async def trigger_typing(self, request: web.Request) -> web.Response:
        self.typing.append(int(request.match_info["channel_id"]))
        return web.Response(status=204)

    async def create_message(self, request: web.Request) -> web.Response:
        if self._rate_limited:
            self._rate_limited -= 1
            self.rate_limited_hits += 1
            return json_reply({"message": "You are being rate limited.", "retry_after": 0.3, "global": False},
                              status=429, headers={"Retry-After": "0.3", "X-RateLimit-Scope": "user",
                                                   # discord.py retries only a 429 that came through Discord's proxy
                                                   "Via": "1.1 google"})
        channel_id = int(request.match_info["channel_id"])
        payload = await request.json()
        message = self.message_json(channel_id, BOT_ID, "Inosuke", payload.get("content", ""), bot=True,
                                    reference=payload.get("message_reference"))
        self.posted.append(PostedMessage(channel_id, int(message["id"]), message["content"], payload))
        self._posted_event.set()
        await self.dispatch("MESSAGE_CREATE", message)  # Discord echoes the bot's own messages
        return json_reply(message)

    def rate_limit_next(self, count: int) -> None:
        """The next `count` message posts get a 429 with retry-after."""
        self._rate_limited = count

    # ---- gateway ---------------------------------------------------------------------------
    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op = message["op"]
                if op == 1:
                    await socket.send_json({"op": 11})
                elif op == 2:
                    self.identifies += 1
                    await self.send_dispatch(socket, "READY", {
                        "v": 10, "user": user_json(BOT_ID, "Inosuke", bot=True), "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                        "session_id": self._session, "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                        "application": {"id": str(APP_ID), "flags": 0}, "private_channels": [], "relationships": [],
                    })
                    await self.send_dispatch(socket, "GUILD_CREATE", self.guild_json())
                elif op == 6:
                    self.resumes += 1
                    missed = [e for e in self._events if e[0] > (message["d"].get("seq") or 0)]
                    for sequence, event, data in missed:
                        await socket.send_json({"op": 0, "s": sequence, "t": event, "d": data})
                    await self.send_dispatch(socket, "RESUMED", {})
        finally:
            if socket in self._sockets:
                self._sockets.remove(socket)
        return socket

    async def send_dispatch(self, socket, event: str, data: dict) -> None:
        self._sequence += 1
        await socket.send_json({"op": 0, "s": self._sequence, "t": event, "d": data})

    async def dispatch(self, event: str, data: dict) -> None:
        """Send an event to the connected client; kept for replay if the client is away."""
        self._sequence += 1
        self._events.append((self._sequence, event, data))
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.send_json({"op": 0, "s": self._sequence, "t": event, "d": data})

    async def drop_gateway(self) -> None:
        """Close the gateway connection abnormally, as Discord does now and then."""
        for socket in list(self._sockets):
            await socket.close(code=4000, message=b"emulated drop")

    async def wait_until_connected(self, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not self._sockets:
                await asyncio.sleep(0.05)

    # ---- the world -------------------------------------------------------------------------
    def guild_json(self) -> dict:
        return {
            "id": str(GUILD_ID), "name": "Butterfly Mansion", "icon": None, "owner_id": str(next(iter(self.users), BOT_ID)),
            "roles": [{"id": str(EVERYONE_ROLE), "name": "@everyone", "permissions": "2248473465835073", "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "channels": [{"id": str(cid), "type": 0, "name": name, "position": i, "permission_overwrites": [], "guild_id": str(GUILD_ID)}
                         for i, (cid, name) in enumerate(self.channels.items())],
            "members": [{"user": user_json(uid, name), "roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}
                        for uid, name in self.users.items()]
                       + [{"user": user_json(BOT_ID, "Inosuke", bot=True), "roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}],
            "member_count": len(self.users) + 1, "large": False, "features": [], "emojis": [], "stickers": [], "threads": [],
            "presences": [], "voice_states": [], "stage_instances": [], "guild_scheduled_events": [], "premium_tier": 0,
            "preferred_locale": "en-US", "joined_at": now_iso(), "unavailable": False, "mfa_level": 0, "verification_level": 0,
        }

    def message_json(self, channel_id: int, author_id: int, author_name: str, content: str, *, bot: bool = False,
                     mentions: list[int] = (), reference: dict | None = None) -> dict:
        message = {
            "id": str(snowflake()), "channel_id": str(channel_id), "guild_id": str(GUILD_ID),
            "author": user_json(author_id, author_name, bot), "member": {"roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0},
            "content": content, "timestamp": now_iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [user_json(m, self.users.get(m, "Inosuke"), m == BOT_ID) for m in mentions],
            "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0, "components": [],
        }
        if reference:
            message["message_reference"] = {**reference, "channel_id": str(channel_id), "guild_id": str(GUILD_ID)}
            original = next((p for p in self.posted if str(p.id) == str(reference.get("message_id"))), None)
            if original is not None:
                message["referenced_message"] = self.message_json(channel_id, BOT_ID, "Inosuke", original.content, bot=True) | {"id": str(original.id)}
        return message

    async def user_says(self, channel_id: int, user_id: int, content: str, *, mention_bot: bool = False,
                        reply_to: int | None = None, bot: bool = False) -> dict:
        text = f"<@{BOT_ID}> {content}" if mention_bot else content
        message = self.message_json(channel_id, user_id, self.users.get(user_id, f"user{user_id}"), text, bot=bot,
                                    mentions=[BOT_ID] if mention_bot else [],
                                    reference={"message_id": str(reply_to)} if reply_to else None)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def wait_for_bot_message(self, channel_id: int, after: int = 0, timeout: float = 120) -> PostedMessage:
        """The first message the bot posted in the channel after the first `after` ones there."""
        async with asyncio.timeout(timeout):
            while True:
                mine = [p for p in self.posted if p.channel_id == channel_id]
                if len(mine) > after:
                    return mine[after]
                self._posted_event.clear()
                await self._posted_event.wait()
