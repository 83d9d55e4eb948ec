"""A protocol-level Discord emulator for tests: the REST routes the bot calls and a gateway
websocket (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, dispatches), served by
aiohttp on loopback, so that the real discord.py client runs unchanged against it.

Shards as Discord runs them: `GET /gateway/bot` recommends `recommended_shards`; each IDENTIFY
names its shard ([shard_id, shard_count]) and opens one session; a guild belongs to shard
`(guild_id >> 22) % shard_count`, and its GUILD_CREATE and every event in it go to that shard's
session only (events outside a guild, to shard 0). An IDENTIFY without a shard is shard 0 of 1.
Several guilds: `guilds` (id -> name) and `channel_guilds` (channel -> guild; GUILD_ID when not
listed).

Point discord.py at it with `emulator.patch_discord()` (Route.BASE and
DiscordWebSocket.DEFAULT_GATEWAY). Tests make users talk with `user_says(...)` (also system
messages and attachment-only posts), edit and delete messages (`edit`, `delete`), and read what
the bot posted with `wait_for_bot_message(...)`; `drop_gateway()` and `rate_limit_next(n)` inject
the failures a real bot meets. A second guild (OTHER_GUILD, channel ELSEWHERE) and per-channel
permission overwrites (`overwrites`) let tests check where rights are checked; a reply that
references a deleted or unknown message is refused as Discord refuses it, unless the bot asks
for `fail_if_not_exists: false`. Interactions: `slash(...)`, `click(...)` and `context_menu(...)`
send INTERACTION_CREATE as Discord would and return the bot's response (the callback route),
with the message it created or updated; command sync (PUT .../commands) is recorded.
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
GUILD_ID = 900_000_000_000_000_010  # on shard 1 of 2: (GUILD_ID >> 22) % 2 == 1
SECOND_GUILD = GUILD_ID + (1 << 22)  # on shard 0 of 2
OTHER_GUILD = 900_000_000_000_000_011  # another server the bot is in by default (channel ELSEWHERE)
EVERYONE_ROLE = GUILD_ID
MOD_ROLE = 900_000_000_000_000_020  # a role a server may configure as moderators (in GUILD_ID)
# Channel permissions in interaction payloads: view, send, read history; moderators add Manage Messages.
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16)
MANAGE_MESSAGES = 1 << 13
EPHEMERAL = 1 << 6
# The emulated guild that the end-to-end tests talk in: its channels and members.
GENERAL, TRAINING, ENABLED = 101, 102, 103
ELSEWHERE = 111  # a channel of OTHER_GUILD
TANJIRO, ZENITSU, OTHER_BOT = 201, 202, 299
CHANNELS = {GENERAL: "general", TRAINING: "training", ENABLED: "inosuke-chat"}
VIEW_CHANNEL = 1 << 10
MEMBERS = {TANJIRO: "Tanjiro", ZENITSU: "Zenitsu"}
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
    message: dict | None = None  # the message as Discord returned it (components included)


@dataclass
class InteractionResponse:
    type: int  # 4: message, 5: deferred, 6: deferred update, 7: update the message
    data: dict
    message: dict | None  # the message created (type 4) or updated (type 7)

    @property
    def content(self) -> str:
        return (self.message or {}).get("content") or self.data.get("content") or ""

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """Discord's rule: which shard receives a guild's events (DMs go to shard 0)."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


@dataclass
class GatewaySession:
    """One IDENTIFY: a shard's session, its own sequence numbers and the events kept for RESUME."""

    id: str
    shard: tuple[int, int]  # (shard_id, shard_count)
    socket: web.WebSocketResponse | None
    sequence: int = 0
    events: list[tuple[int, str, dict]] = field(default_factory=list)
    guilds: list[int] = field(default_factory=list)  # the guilds sent to this shard

    def serves(self, guild_id: int | None) -> bool:
        return shard_of(guild_id, self.shard[1]) == self.shard[0]


@dataclass
class Emulator:
    channels: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    guilds: dict[int, str] = field(default_factory=lambda: {GUILD_ID: "Butterfly Mansion", OTHER_GUILD: "Elsewhere"})
    channel_guilds: dict[int, int] = field(default_factory=lambda: {ELSEWHERE: OTHER_GUILD})  # channel -> guild (GUILD_ID when absent)
    recommended_shards: int = 1  # what GET /gateway/bot answers
    posted: list[PostedMessage] = field(default_factory=list)
    typing: list[int] = field(default_factory=list)
    typing_delay_s: float = 0.0  # how long Discord takes to answer a typing request (a busy or rate-limited API)
    identifies: int = 0
    resumes: int = 0
    sessions: list[GatewaySession] = field(default_factory=list)  # every IDENTIFY, in order
    synced: dict[str, list[dict]] = field(default_factory=dict)  # "global" or a guild id -> commands
    overwrites: dict[int, list[dict]] = field(default_factory=dict)  # channel -> Discord permission overwrites
    messages: dict[str, dict] = field(default_factory=dict)  # every message that exists, by id
    deleted: set[str] = field(default_factory=set)

    def __post_init__(self):
        if self.channel_guilds.get(ELSEWHERE) in self.guilds:
            self.channels.setdefault(ELSEWHERE, "elsewhere")
        self.app = web.Application()
        self.app.add_routes([
            web.get("/gateway", self.gateway),
            web.get("/api/v10/users/@me", self.me),
            web.get("/api/v10/oauth2/applications/@me", self.application),
            web.get("/api/v10/gateway", self.gateway_url),
            web.get("/api/v10/gateway/bot", self.gateway_bot),
            web.post("/api/v10/channels/{channel_id}/messages", self.create_message),
            web.post("/api/v10/channels/{channel_id}/typing", self.trigger_typing),
            web.put("/api/v10/applications/{app_id}/commands", self.sync_commands),
            web.put("/api/v10/applications/{app_id}/guilds/{guild_id}/commands", self.sync_commands),
            web.post("/api/v10/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            web.patch("/api/v10/webhooks/{app_id}/{token}/messages/@original", self.edit_original),
            web.post("/api/v10/webhooks/{app_id}/{token}", self.followup),
        ])
        self._channel_of: dict[str, int] = {}  # interaction id -> its channel
        self._updating: dict[str, str] = {}  # component interaction id -> the message it may update
        self._responses: dict[str, asyncio.Future] = {}  # interaction id -> InteractionResponse
        self._interaction_messages: dict[str, dict] = {}  # messages created by interaction responses
        self._sockets: list[web.WebSocketResponse] = []
        self._rate_limited = 0
        self._posted_event = asyncio.Event()
        # In order: {"id", "content"} for every edit of a message through an interaction, and
        # {"followup", "ephemeral"} for every follow-up message after a deferred response.
        self.updates: list[dict] = []
        self._updated_event = asyncio.Event()
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

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_reply({"url": f"ws://127.0.0.1:{self.port}/gateway", "shards": self.recommended_shards,
                           "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})

    async def trigger_typing(self, request: web.Request) -> web.Response:
        self.typing.append(int(request.match_info["channel_id"]))
        await asyncio.sleep(self.typing_delay_s)
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
        reference = payload.get("message_reference")
        if reference and str(reference.get("message_id")) not in self.messages:
            if reference.get("fail_if_not_exists", True):  # Discord's answer to a reply to a deleted message
                return json_reply({"code": 50035, "message": "Invalid Form Body", "errors": {"message_reference": {
                    "_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]}}}, status=400)
            reference = None
        message = self.message_json(channel_id, BOT_ID, "Inosuke", payload.get("content", ""), bot=True,
                                    reference=reference)
        message["components"] = payload.get("components", [])
        self.posted.append(PostedMessage(channel_id, int(message["id"]), message["content"], payload, message))
        self._posted_event.set()
        await self.dispatch("MESSAGE_CREATE", message)  # Discord echoes the bot's own messages
        return json_reply(message)

    async def sync_commands(self, request: web.Request) -> web.Response:
        commands = [{"description": "", "options": [], "nsfw": False, **c, "id": str(snowflake()), "application_id": str(APP_ID), "version": "1",
                     "default_member_permissions": c.get("default_member_permissions"), "dm_permission": c.get("dm_permission", True)}
                    for c in await request.json()]
        self.synced[request.match_info.get("guild_id", "global")] = commands
        return json_reply(commands)

    async def interaction_callback(self, request: web.Request) -> web.Response:
        interaction_id = request.match_info["interaction_id"]
        body = await request.json()
        kind, data = body["type"], body.get("data") or {}
        message = None
        if kind == 4:
            message = self.message_json(self._channel_of[interaction_id], BOT_ID, "Inosuke", data.get("content", ""), bot=True)
            message |= {"components": data.get("components", []), "flags": data.get("flags", 0),
                        "interaction_id": interaction_id}
            self._interaction_messages[message["id"]] = message
        elif kind == 7:  # the message stays the interaction's original: a later PATCH @original edits it again
            message = self.update_message(self._updating.get(interaction_id, ""), data)
        future = self._responses.get(interaction_id)
        if future is not None and not future.done():
            future.set_result(InteractionResponse(kind, data, message))
        resource = {"type": kind} | ({"message": message} if message else {})
        return json_reply({"interaction": {"id": interaction_id, "type": 2, "response_message_id": message and message["id"],
                                           "response_message_loading": kind == 5,
                                           "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL)},
                           "resource": resource})

    def update_message(self, message_id: str, data: dict) -> dict | None:
        """A component's message edited through its interaction (an interaction response's own,
        or a channel message the bot posted); recorded in `updates`."""
        message = self._interaction_messages.get(message_id) or self.messages.get(message_id)
        if message is not None:
            message.update({k: data[k] for k in ("content", "components") if k in data})
            self.updates.append({"id": message_id, "content": message["content"]})
            self._updated_event.set()
        return message

    async def edited_from(self, message: dict, content: str, timeout: float = 120) -> dict:
        """`message` once its content is no longer `content` (an acknowledgement edited into
        the answer through PATCH @original)."""
        async with asyncio.timeout(timeout):
            while message["content"] == content:
                self._updated_event.clear()
                await self._updated_event.wait()
        return message

    async def edit_original(self, request: web.Request) -> web.Response:
        """PATCH .../messages/@original after a deferred update (type 6): edits the component's message."""
        interaction_id = request.match_info["token"].removeprefix("token-")
        message = self.update_message(self._updating.pop(interaction_id, ""), await request.json())
        if message is None:
            return json_reply({"message": "Unknown Message", "code": 10008}, status=404)
        return json_reply(message)

    async def followup(self, request: web.Request) -> web.Response:
        """A follow-up message after a deferred response (e.g. an ephemeral refusal)."""
        interaction_id = request.match_info["token"].removeprefix("token-")
        data = await request.json()
        message = self.message_json(self._channel_of[interaction_id], BOT_ID, "Inosuke", data.get("content", ""), bot=True)
        message |= {"flags": data.get("flags", 0)}
        self.updates.append({"followup": message["content"], "ephemeral": bool(message["flags"] & EPHEMERAL)})
        self._updated_event.set()
        return json_reply(message)

    async def wait_for_update(self, after: int, timeout: float = 120) -> dict:
        """The edit or follow-up after the first `after` ones (see `updates`)."""
        async with asyncio.timeout(timeout):
            while True:
                if len(self.updates) > after:
                    return self.updates[after]
                self._updated_event.clear()
                await self._updated_event.wait()

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
                    await self.identify(socket, message["d"])
                elif op == 6:
                    await self.resume(socket, message["d"])
        finally:
            if socket in self._sockets:
                self._sockets.remove(socket)
        return socket

    async def identify(self, socket, payload: dict) -> None:
        self.identifies += 1
        shard = tuple(payload.get("shard") or (0, 1))
        session = GatewaySession(f"emulated-session-{len(self.sessions) + 1}", shard, socket)
        session.guilds = [g for g in self.guilds if session.serves(g)]
        # A new IDENTIFY for a shard replaces its earlier session, as on Discord.
        self.sessions = [s for s in self.sessions if s.shard != shard] + [session]
        await self.send_dispatch(session, "READY", {
            "v": 10, "user": user_json(BOT_ID, "Inosuke", bot=True), "shard": list(shard),
            "guilds": [{"id": str(g), "unavailable": True} for g in session.guilds],
            "session_id": session.id, "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
            "application": {"id": str(APP_ID), "flags": 0}, "private_channels": [], "relationships": [],
        })
        for guild in session.guilds:
            await self.send_dispatch(session, "GUILD_CREATE", self.guild_json(guild))

    async def resume(self, socket, payload: dict) -> None:
        self.resumes += 1
        session = next((s for s in self.sessions if s.id == payload.get("session_id")), None)
        if session is None:
            await socket.send_json({"op": 9, "d": False})  # invalid session: identify again
            return
        session.socket = socket
        for sequence, event, data in [e for e in session.events if e[0] > (payload.get("seq") or 0)]:
            await socket.send_json({"op": 0, "s": sequence, "t": event, "d": data})
        await self.send_dispatch(session, "RESUMED", {})

    async def send_dispatch(self, session: GatewaySession, event: str, data: dict) -> None:
        session.sequence += 1
        await session.socket.send_json({"op": 0, "s": session.sequence, "t": event, "d": data})

    async def dispatch(self, event: str, data: dict) -> None:
        """Send an event to the session of the shard its guild belongs to; kept there for replay
        if the client is away."""
        guild = int(data["guild_id"]) if data.get("guild_id") else None
        for session in [s for s in self.sessions if s.serves(guild)][-1:]:
            session.sequence += 1
            session.events.append((session.sequence, event, data))
            if session.socket is not None and not session.socket.closed:
                await session.socket.send_json({"op": 0, "s": session.sequence, "t": event, "d": data})

    async def drop_gateway(self) -> None:
        """Close the gateway connection abnormally, as Discord does now and then."""
        for socket in list(self._sockets):
            await socket.close(code=4000, message=b"emulated drop")

    async def wait_until_connected(self, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not self._sockets:
                await asyncio.sleep(0.05)

    # ---- the world -------------------------------------------------------------------------
    def guild_of(self, channel_id: int) -> int:
        return self.channel_guilds.get(channel_id, GUILD_ID)

    def guild_json(self, guild_id: int = GUILD_ID) -> dict:
        mod_role = MOD_ROLE if guild_id == GUILD_ID else guild_id + 10
        channels = [(cid, name) for cid, name in self.channels.items() if self.guild_of(cid) == guild_id]
        return {
            "id": str(guild_id), "name": self.guilds[guild_id], "icon": None, "owner_id": str(next(iter(self.users), BOT_ID)),
            "roles": [{"id": str(guild_id), "name": "@everyone", "permissions": "2248473465835073", "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
                      {"id": str(mod_role), "name": "Hashira", "permissions": "0", "position": 1,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "channels": [{"id": str(cid), "type": 0, "name": name, "position": i, "guild_id": str(guild_id),
                          "permission_overwrites": self.overwrites.get(cid, [])}
                         for i, (cid, name) in enumerate(channels)],
            "members": [{"user": user_json(uid, name), "roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}
                        for uid, name in self.users.items()]
                       + [{"user": user_json(BOT_ID, "Inosuke", bot=True), "roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}],
            "member_count": len(self.users) + 1, "large": False, "features": [], "emojis": [], "stickers": [], "threads": [],
            "presences": [], "voice_states": [], "stage_instances": [], "guild_scheduled_events": [], "premium_tier": 0,
            "preferred_locale": "en-US", "joined_at": now_iso(), "unavailable": False, "mfa_level": 0, "verification_level": 0,
        }

    def message_json(self, channel_id: int, author_id: int, author_name: str, content: str, *, bot: bool = False,
                     mentions: list[int] = (), reference: dict | None = None) -> dict:
        guild = str(self.guild_of(channel_id))
        message = {
            "id": str(snowflake()), "channel_id": str(channel_id), "guild_id": guild,
            "author": user_json(author_id, author_name, bot), "member": {"roles": [], "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0},
            "content": content, "timestamp": now_iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [user_json(m, self.users.get(m, "Inosuke"), m == BOT_ID) for m in mentions],
            "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0, "components": [],
        }
        if reference:
            message["message_reference"] = {**reference, "channel_id": str(channel_id), "guild_id": guild}
            original = next((p for p in self.posted if str(p.id) == str(reference.get("message_id"))), None)
            if original is not None:
                message["referenced_message"] = self.message_json(channel_id, BOT_ID, "Inosuke", original.content, bot=True) | {"id": str(original.id)}
        self.messages[message["id"]] = message
        return message

    async def user_says(self, channel_id: int, user_id: int, content: str, *, mention_bot: bool = False,
                        reply_to: int | None = None, bot: bool = False, mentions: list[int] = (), kind: int = 0,
                        attachments: int = 0) -> dict:
        """A user posts a message; `kind` is Discord's message type (7: a member joined), and
        `attachments` adds that many image attachments."""
        text = f"<@{BOT_ID}> {content}" if mention_bot else content
        message = self.message_json(channel_id, user_id, self.users.get(user_id, f"user{user_id}"), text, bot=bot,
                                    mentions=([BOT_ID] if mention_bot else []) + list(mentions),
                                    reference={"message_id": str(reply_to)} if reply_to else None)
        message["type"] = kind
        message["attachments"] = [{"id": str(snowflake()), "filename": f"image{i}.png", "size": 1024, "content_type": "image/png",
                                   "url": f"{self.base}/attachments/{i}.png", "proxy_url": f"{self.base}/attachments/{i}.png"}
                                  for i in range(attachments)]
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def edit(self, message: dict, content: str) -> dict:
        """The author edits a message (MESSAGE_UPDATE carries the whole message, as Discord sends it)."""
        edited = {**message, "content": content, "edited_timestamp": now_iso()}
        self.messages[message["id"]] = edited
        await self.dispatch("MESSAGE_UPDATE", edited)
        return edited

    async def delete(self, message: dict) -> None:
        """A message is deleted (by its author or a moderator)."""
        self.messages.pop(str(message["id"]), None)
        self.deleted.add(str(message["id"]))
        await self.dispatch("MESSAGE_DELETE", {"id": str(message["id"]), "channel_id": message["channel_id"],
                                               "guild_id": message.get("guild_id")})

    # ---- interactions ----------------------------------------------------------------------
    def member_json(self, user_id: int, *, moderator: bool = False, roles: list[int] = ()) -> dict:
        return {"user": user_json(user_id, self.users.get(user_id, f"user{user_id}")), "roles": [str(r) for r in roles],
                "permissions": str(MEMBER_PERMISSIONS | (MANAGE_MESSAGES if moderator else 0)),
                "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}

    async def interact(self, kind: int, channel_id: int, user_id: int, data: dict, *, message: dict | None = None,
                       moderator: bool = False, roles: list[int] = (), timeout: float = 60) -> InteractionResponse:
        """Send an INTERACTION_CREATE and wait for the bot's callback."""
        interaction_id = str(snowflake())
        guild = str(self.guild_of(channel_id))
        payload = {
            "id": interaction_id, "application_id": str(APP_ID), "type": kind, "data": data, "token": f"token-{interaction_id}",
            "version": 1, "guild_id": guild, "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "guild_id": guild, "name": self.channels.get(channel_id, "channel"),
                        "position": 0, "permission_overwrites": self.overwrites.get(channel_id, [])},
            "member": self.member_json(user_id, moderator=moderator, roles=roles), "locale": "en-US", "guild_locale": "en-US",
            "app_permissions": str((1 << 53) - 1), "entitlements": [], "attachment_size_limit": 8 << 20,
            "authorizing_integration_owners": {"0": guild}, "context": 0,
        }
        if message is not None:
            payload["message"] = message
        self._responses[interaction_id] = asyncio.get_running_loop().create_future()
        self._channel_of[interaction_id] = channel_id
        if kind == 3 and message is not None:
            self._updating[interaction_id] = message["id"]
        await self.dispatch("INTERACTION_CREATE", payload)
        async with asyncio.timeout(timeout):
            return await self._responses[interaction_id]

    def command_id(self, name: str) -> str:
        known = [c for commands in self.synced.values() for c in commands if c["name"] == name]
        return known[0]["id"] if known else str(snowflake())

    async def slash(self, channel_id: int, user_id: int, name: str, options: dict | None = None, **member) -> InteractionResponse:
        kinds = {bool: 5, int: 4, str: 3}
        data = {"id": self.command_id(name), "name": name, "type": 1, "guild_id": str(self.guild_of(channel_id)),
                "options": [{"name": k, "type": kinds[type(v)], "value": v} for k, v in (options or {}).items()]}
        return await self.interact(2, channel_id, user_id, data, **member)

    async def context_menu(self, channel_id: int, user_id: int, name: str, target: dict, **member) -> InteractionResponse:
        data = {"id": self.command_id(name), "name": name, "type": 3, "guild_id": str(self.guild_of(channel_id)), "target_id": target["id"],
                "resolved": {"messages": {target["id"]: target}}}
        return await self.interact(2, channel_id, user_id, data, **member)

    @staticmethod
    def buttons(message: dict) -> dict[str, str]:
        """A message's buttons: label (or emoji) -> custom_id."""
        return {c.get("label") or c["emoji"]["name"]: c["custom_id"]
                for row in message.get("components", []) for c in row.get("components", [])}

    async def click(self, channel_id: int, user_id: int, message: dict, custom_id: str, **member) -> InteractionResponse:
        """Press a button on a message the bot sent (a channel message or an interaction response)."""
        buttons = [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])]
        assert custom_id in buttons, f"no button {custom_id!r} on the message; it has {buttons}"
        return await self.interact(3, channel_id, user_id, {"custom_id": custom_id, "component_type": 2},
                                   message=message, **member)

    async def wait_for_bot_message(self, channel_id: int, after: int = 0, timeout: float = 120) -> PostedMessage:
        """The first message the bot posted in the channel after the first `after` ones there."""
        async with asyncio.timeout(timeout):
            while True:
                mine = [p for p in self.posted if p.channel_id == channel_id]
                if len(mine) > after:
                    return mine[after]
                self._posted_event.clear()
                await self._posted_event.wait()
