"""The Discord side: discord.py's client wired to the shared reply pipeline.

When to reply: mentions, replies to the bot, DMs, and channels configured as enabled; never to
itself; other bots only from an allowlist, and only for a few exchanges in a row (loop breaker).
Replies show a typing indicator while generating, are split under 2,000 characters, and are sent
with AllowedMentions that can never ping @everyone, @here or a role, whatever the model writes.
Every stored reply carries 👍/👎 buttons (bot/discord_rating.py); the slash commands live in
bot/discord_commands.py and are synced to one guild (development) or globally at start-up.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

import discord
from discord import app_commands

from bot.discord_front import commands as discord_commands
from bot.service.pipeline import APOLOGY
from bot.discord_front.rating import RateButton, rating_view
from bot.discord_front.message_split import split_message
from bot.discord_front.rate_limit import SLOW_DOWN, RateLimiter
from bot.service.runtime import Runtime
from core.settings import DiscordSettings

log = logging.getLogger(__name__)

# A text bot: no voice, so no warnings about voice libraries at start-up.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

# Users may be pinged (the person replied to); @everyone, @here and roles never.
SAFE_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True)



class InosukeBot(discord.Client):
    def __init__(self, runtime: Runtime, settings: DiscordSettings = DiscordSettings()):
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: enable it for the application in the developer portal
        super().__init__(intents=intents, allowed_mentions=SAFE_MENTIONS)
        self.runtime, self.settings = runtime, settings
        self.rate_limiter = RateLimiter(settings.rate_limit_messages, settings.rate_limit_seconds)
        self._bot_exchanges: defaultdict[int, int] = defaultdict(int)
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self.on_command_error
        discord_commands.install(self.tree)

    async def setup_hook(self) -> None:
        # Buttons are recognised by their custom_id, so those under replies sent before a
        # restart keep working.
        self.add_dynamic_items(RateButton)
        if self.settings.sync_commands:
            await self.sync_commands()

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
        log.info("connected as %s (%s) to %d guild(s)", self.user, self.user.id, len(self.guilds))

    def addressed(self, message: discord.Message) -> bool:
        if message.guild is None or self.user in message.mentions:
            return True
        resolved = message.reference.resolved if message.reference else None
        return isinstance(resolved, discord.Message) and resolved.author.id == self.user.id

    def should_reply(self, message: discord.Message) -> bool:
        if self.user is None or message.author.id == self.user.id:
            return False
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
        """The text as people read it: the bot's own mention dropped, other mentions as @names."""
        text = re.sub(rf"<@!?{self.user.id}>", "", message.content)
        for user in message.mentions:
            text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
        return text.strip() or message.clean_content

    async def on_message(self, message: discord.Message) -> None:
        if not self.should_reply(message):
            return
        if not self.rate_limiter.allow(message.author.id):
            await self.send_reply(message, SLOW_DOWN)
            return
        async with message.channel.typing():
            reply = await self.runtime.pipeline.respond(
                message.channel.id, message.author.id, message.author.display_name, self.message_text(message),
                discord_id=message.id, reply_to_discord_id=message.reference.message_id if message.reference else None,
                guild_id=message.guild.id if message.guild else None, channel_name=getattr(message.channel, "name", None))
        buttons = rating_view(reply.message_id) if reply.message_id is not None else None
        sent = await self.send_reply(message, reply.text, buttons)
        if sent and reply.message_id is not None:
            await self.runtime.history.set_discord_id(reply.message_id, sent[0].id)

    async def send_reply(self, message: discord.Message, text: str, buttons: discord.ui.View | None = None) -> list[discord.Message]:
        """Send `text` as a reply, split under Discord's limit, with `buttons` under the last
        chunk (where the reader finishes); a failure is logged, never raised."""
        sent = []
        chunks = split_message(text)
        try:
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                sent.append(await message.channel.send(chunk, reference=message if index == 0 else None,
                                                       allowed_mentions=SAFE_MENTIONS,
                                                       view=buttons if last else None))
        except discord.HTTPException:
            log.exception("could not send a reply in channel %s", message.channel.id)
        return sent
