"""The Discord side: discord.py's client wired to the shared reply pipeline.

When to reply: mentions, replies to the bot, DMs, and channels configured as enabled; never to
itself; other bots only from an allowlist, and only for a few exchanges in a row (loop breaker);
never to a message with no text (attachments only, system messages such as a member joining,
zero-width characters only). Replies show a typing indicator while generating, are split under
2,000 characters, and are sent with AllowedMentions that ping only the person replied to,
whatever the model writes (never @everyone, @here, a role, or a user it names).

Edits and deletes of stored messages are applied to the history (core/db/privacy.py). At
shutdown the bot stops taking new messages, lets replies under way finish for
`shutdown_grace_s`, then answers the rest with an in-character good night; a reply is stored as
sent only once Discord took it.
Every stored reply carries 👍/👎 buttons (bot/discord_front/rating.py) and 🔄 (bot/discord_front/swipe.py:
another reply to the same context, edited in place); the slash commands live in
bot/discord_front/commands.py and are synced to one guild (development) or globally at start-up.

Shards: `make_client` gives the plain one-connection client by default, or the same bot on
discord.py's AutoShardedClient when `discord.shard_count` is set; several processes can each run
a range of shards (`discord.shard_ids`) against one database. Only the process that runs shard 0
syncs the commands, and a message that another process already stored is not answered twice.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections import defaultdict

import discord
from discord import app_commands

from bot.discord_front import commands as discord_commands
from bot.service.pipeline import APOLOGY
from bot.discord_front.rating import RateButton
from bot.discord_front.swipe import SwipeButton, reply_view
from bot.discord_front.message_split import split_message
from bot.discord_front.rate_limit import SLOW_DOWN, RateLimiter
from bot.service.runtime import Runtime
from core.staged_data import purge_replies
from core.db.history import AlreadyStored
from core.settings import DiscordSettings

log = logging.getLogger(__name__)

# A text bot: no voice, so no warnings about voice libraries at start-up.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

# The person replied to is the only ping; never @everyone, @here, roles, or a user the model names.
SAFE_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=False, replied_user=True)
# Messages people write; joins, pins, boosts, thread notices and the like are system messages.
CONVERSATION_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def visible(text: str) -> bool:
    """Whether the text shows anything: not only whitespace and invisible format characters
    (zero-width spaces and joiners, direction marks)."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)



class InosukeBot(discord.Client):
    def __init__(self, runtime: Runtime, settings: DiscordSettings = DiscordSettings(), **client_options):
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: enable it for the application in the developer portal
        super().__init__(intents=intents, allowed_mentions=SAFE_MENTIONS, **client_options)
        self.runtime, self.settings = runtime, settings
        self.rate_limiter = RateLimiter(settings.rate_limit_messages, settings.rate_limit_seconds)
        self._bot_exchanges: defaultdict[int, int] = defaultdict(int)
        self._handling: set[asyncio.Task] = set()  # on_message handlers under way
        self._stopping: asyncio.Task | None = None
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self.on_command_error
        discord_commands.install(self.tree)

    async def setup_hook(self) -> None:
        # Buttons are recognised by their custom_id, so those under replies sent before a
        # restart keep working.
        self.add_dynamic_items(RateButton, SwipeButton)
        if self.settings.sync_commands and self.runs_first_shard:
            await self.sync_commands()

    @property
    def runs_first_shard(self) -> bool:
        """Unsharded, or running shard 0: the one process that syncs commands."""
        shard_ids = getattr(self, "shard_ids", None)
        return shard_ids is None or 0 in shard_ids

    def shard_for(self, guild_id: int | None) -> int | None:
        """The shard a guild's events come through (Discord's rule), None when unsharded."""
        if not self.shard_count:
            return None
        return 0 if guild_id is None else (guild_id >> 22) % self.shard_count

    async def sync_commands(self) -> None:
        guild = discord.Object(self.settings.command_guild) if self.settings.command_guild else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as error:  # e.g. invited without the applications.commands scope
            log.error("could not sync slash commands (%s); re-invite the bot with the applications.commands scope", error)
            return
        log.info("synced %d command(s) %s", len(synced), f"to guild {guild.id}" if guild else "globally (may take up to an hour to show)")

    async def on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        log.error("command %s failed", interaction.command and interaction.command.name, exc_info=error)
        if not interaction.response.is_done():
            await interaction.response.send_message(APOLOGY, ephemeral=True)

    async def on_ready(self) -> None:
        self.runtime.pipeline.bot_user_id = self.user.id
        shards = f", shards {list(self.shards)} of {self.shard_count}" if isinstance(self, discord.AutoShardedClient) else ""
        log.info("connected as %s (%s) to %d guild(s)%s", self.user, self.user.id, len(self.guilds), shards)

    def addressed(self, message: discord.Message) -> bool:
        if message.guild is None or self.user in message.mentions:
            return True
        resolved = message.reference.resolved if message.reference else None
        return isinstance(resolved, discord.Message) and resolved.author.id == self.user.id

    def should_reply(self, message: discord.Message) -> bool:
        if self.user is None or message.author.id == self.user.id or self._stopping is not None:
            return False
        if message.type not in CONVERSATION_TYPES or not visible(self.message_text(message)):
            return False  # nothing to answer: an image alone, a member joining, zero-width characters
        channel = message.channel.id
        if message.author.bot:
            if message.author.id not in self.settings.bot_allowlist or self._bot_exchanges[channel] >= self.settings.bot_exchange_limit:
                return False
        if not (self.addressed(message) or channel in self.settings.enabled_channels):
            return False
        # Any human message resets the loop breaker; a bot's message counts towards it.
        self._bot_exchanges[channel] = self._bot_exchanges[channel] + 1 if message.author.bot else 0
        return True

    def message_text(self, message: discord.Message) -> str:
        """The text as people read it: the bot's own mention dropped, other mentions as @names.
        (Plain replacements: a display name such as `Neo\\1` is text, not a pattern.)"""
        text = message.content
        for mention in (f"<@{self.user.id}>", f"<@!{self.user.id}>"):
            text = text.replace(mention, "")
        for user in message.mentions:
            for mention in (f"<@{user.id}>", f"<@!{user.id}>"):
                text = text.replace(mention, f"@{user.display_name}")
        return text.strip()

    async def on_message(self, message: discord.Message) -> None:
        if not self.should_reply(message):
            return
        verdict = self.rate_limiter.check(message.author.id)
        if verdict != "allow":
            if verdict == "warn":  # once per window; then silence, so a flood gets one answer
                await self.send_reply(message, SLOW_DOWN)
            return
        task = asyncio.current_task()
        self._handling.add(task)
        text = self.message_text(message)
        self.runtime.pipeline.expect(message.id, text)  # edits and deletes from now on reach it
        try:
            async def deliver(text: str, reply_id: int | None) -> int | None:
                buttons = reply_view(reply_id, swipes=self.runtime.pipeline.settings.swipe_alternatives > 1) if reply_id is not None else None
                sent = await self.send_reply(message, text, buttons)
                return sent[0].id if sent else None

            async with message.channel.typing():
                await self.runtime.pipeline.respond(
                    message.channel.id, message.author.id, message.author.display_name, text,
                    discord_id=message.id, reply_to_discord_id=message.reference.message_id if message.reference else None,
                    guild_id=message.guild.id if message.guild else None, channel_name=getattr(message.channel, "name", None),
                    deliver=deliver)
        except AlreadyStored:  # a replayed event, or another process running the same shard
            log.info("message %s is already stored: answered once, elsewhere or earlier", message.id)
        finally:
            self.runtime.pipeline.unexpect(message.id)  # when the typing request failed before respond()
            self._handling.discard(task)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if "content" not in payload.data or payload.message.author.id == getattr(self.user, "id", None):
            return  # an embed resolving, not an edit of the text; or our own
        text = self.message_text(payload.message)
        if not visible(text):
            text = ""  # zero-width characters only: nothing to answer, as for a new message
        if await self.runtime.pipeline.edited_while_waiting(payload.message_id, text):
            return  # not stored yet: it will be, as it reads now
        withdrawn = await self.runtime.privacy.message_edited(payload.message_id, text)
        if withdrawn is None:
            return
        if withdrawn.endorsements:
            log.info("message %s edited: %d approval(s)/rating(s) of replies that saw it withdrawn",
                     payload.message_id, withdrawn.endorsements)
        await self.purge_staged(withdrawn.replies)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.messages_deleted([payload.message_id])

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.messages_deleted(sorted(payload.message_ids))

    async def messages_deleted(self, discord_ids: list[int]) -> None:
        await self.runtime.pipeline.deleted_while_waiting(discord_ids)  # those not stored yet never will be
        await self.purge_staged((await self.runtime.privacy.messages_deleted(discord_ids)).replies)

    @staticmethod
    async def purge_staged(replies: set[int]) -> None:
        """Training rows staged on disk from these replies go too (as /forget-me's do): they
        hold text that was edited or deleted."""
        if replies:
            files, rows = await asyncio.to_thread(purge_replies, replies)
            if rows:
                log.info("%d staged training row(s) removed from %d file(s)", rows, files)

    async def send_reply(self, message: discord.Message, text: str, buttons: discord.ui.View | None = None) -> list[discord.Message]:
        """Send `text` as a reply, split under Discord's limit, with `buttons` under the last
        chunk (where the reader finishes); a failure is logged, never raised. The reply still
        goes out when the message it answers was deleted meanwhile."""
        sent = []
        chunks = split_message(text)
        reference = message.to_reference(fail_if_not_exists=False)
        try:
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                sent.append(await message.channel.send(chunk, reference=reference if index == 0 else None,
                                                       allowed_mentions=SAFE_MENTIONS,
                                                       view=buttons if last else None))
        except discord.HTTPException:
            log.exception("could not send a reply in channel %s", message.channel.id)
        return sent

    # ---- shutdown ------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop taking new messages, let the replies under way finish (or answer them), then
        disconnect. Safe to call more than once (python -m bot calls it on SIGTERM / Ctrl-C)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.finish_replies())
        await asyncio.shield(self._stopping)
        await super().close()

    async def finish_replies(self) -> None:
        pending = {t for t in self._handling if not t.done()}
        if pending:
            log.info("shutting down: %d reply(ies) under way get %.0f s to finish", len(pending), self.settings.shutdown_grace_s)
            _, pending = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
        if pending:
            self.runtime.pipeline.stop_generating()  # the rest are told good night, not left hanging
            await asyncio.wait(pending, timeout=30)


class ShardedInosukeBot(InosukeBot, discord.AutoShardedClient):
    """The same bot over several gateway connections (discord.py's AutoShardedClient)."""


def make_client(runtime: Runtime, settings: DiscordSettings = DiscordSettings(), **client_options) -> InosukeBot:
    """One connection by default; shards when `shard_count` is set (auto: Discord's recommendation).
    `client_options` go to discord.py's client as they are (the tests' emulator sends every guild at
    once, so they pass a short `guild_ready_timeout` instead of discord.py's 2 s)."""
    if settings.shard_count is None:
        return InosukeBot(runtime, settings, **client_options)
    count = None if settings.shard_count == "auto" else settings.shard_count
    return ShardedInosukeBot(runtime, settings, shard_count=count, shard_ids=settings.shard_ids, **client_options)
