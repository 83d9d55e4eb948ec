"""Slash commands and message context menus: /rate, /approve (+ "Approve/Reject for training"
on a message), /reset, /forget-me, /inosuke.

Permissions are checked here, at run time, and not only through Discord's default member
permissions, which a server admin can override: a moderator is a member with Manage Messages in
the channel, or with one of the configured moderator roles.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Literal, Optional

import discord
from discord import app_commands

from bot.discord_front.rating import GONE, reply_id_from_buttons
from core.db.ratings import NotRatable, Ratings, is_liked

log = logging.getLogger(__name__)

NOT_A_MODERATOR = "Only moderators can do that! (Manage Messages, or a moderator role.)"
NO_REPLY_YET = "I haven't said anything in this channel yet. Nothing to rate!"
BAD_MESSAGE_REF = "That's not a message link or id. Right-click a message of mine > Copy Message Link."
RESET_DONE = "HAH! Forgot everything before this. Fresh start! Come at me!"
MESSAGE_LINK = re.compile(r"^(?:https://(?:\w+\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/\d+/)?(\d{15,21})/?$")


def ratings_of(interaction: discord.Interaction) -> Ratings:
    return interaction.client.runtime.ratings


def is_moderator(interaction: discord.Interaction) -> bool:
    user = interaction.user
    if not isinstance(user, discord.Member):  # a DM: there is no one to moderate
        return False
    roles = set(interaction.client.settings.moderator_roles)
    return interaction.permissions.manage_messages or any(role.id in roles for role in user.roles)


def parse_message_ref(text: str) -> int:
    match = MESSAGE_LINK.match(text.strip())
    if not match:
        raise ValueError(text)
    return int(match[1])


async def resolve_reply(interaction: discord.Interaction, message_ref: str | None) -> int | None:
    """The reply a command is about: the linked message, or the bot's latest reply in the channel.
    Answers the interaction itself (ephemerally) and returns None when there is none."""
    ratings = ratings_of(interaction)
    if message_ref is None:
        reply = await ratings.latest_reply(interaction.channel_id)
        problem = NO_REPLY_YET
    else:
        try:
            reply = await ratings.reply_for_discord_message(parse_message_ref(message_ref))
        except ValueError:
            reply, problem = None, BAD_MESSAGE_REF
        else:
            problem = GONE
    if reply is None:
        await interaction.response.send_message(problem, ephemeral=True)
    return reply


async def reply_of_message(interaction: discord.Interaction, message: discord.Message) -> int | None:
    reply = await ratings_of(interaction).reply_for_discord_message(message.id) or reply_id_from_buttons(message)
    if reply is None:
        await interaction.response.send_message(GONE, ephemeral=True)
    return reply


async def record_decision(interaction: discord.Interaction, reply: int, approved: bool) -> None:
    ratings = ratings_of(interaction)
    try:
        await ratings.decide(reply, interaction.user.id, approved)
    except NotRatable:
        await interaction.response.send_message(GONE, ephemeral=True)
        return
    s = await ratings.summary(reply)
    verdict = "Approved for training" if approved else "Rejected for training"
    await interaction.response.send_message(
        f"{verdict}: reply #{reply} (👍 {s.thumbs_up}, 👎 {s.thumbs_down}, {s.ratings} rating(s)).", ephemeral=True)


# ---- commands -------------------------------------------------------------------------------

@app_commands.command(name="rate", description="Rate one of Inosuke's replies (default: his latest here)")
@app_commands.describe(score="1 (awful) to 5 (that's Inosuke!)", comment="what was good or bad (optional)",
                       message="link or id of the reply (default: his latest in this channel)")
async def rate(interaction: discord.Interaction, score: app_commands.Range[int, 1, 5],
               comment: Optional[app_commands.Range[str, 1, 500]] = None, message: Optional[str] = None) -> None:
    reply = await resolve_reply(interaction, message)
    if reply is None:
        return
    try:
        changed = await ratings_of(interaction).rate(reply, interaction.user.id, score, comment=comment, via="command")
    except NotRatable:
        await interaction.response.send_message(GONE, ephemeral=True)
        return
    said = "Changed your rating to" if changed else "Rated"
    await interaction.response.send_message(f"{said} {score}/5. " + ("HAH! Obviously!" if is_liked(score) else "Grr... I'll get stronger!"),
                                            ephemeral=True)


@app_commands.command(name="approve", description="Moderators: approve or reject a reply for training")
@app_commands.describe(decision="approve (use for training) or reject (never use)",
                       message="link or id of the reply (default: his latest in this channel)")
@app_commands.default_permissions(manage_messages=True)
@app_commands.guild_only()
async def approve(interaction: discord.Interaction, decision: Literal["approve", "reject"] = "approve",
                  message: Optional[str] = None) -> None:
    if not is_moderator(interaction):
        await interaction.response.send_message(NOT_A_MODERATOR, ephemeral=True)
        return
    reply = await resolve_reply(interaction, message)
    if reply is not None:
        await record_decision(interaction, reply, decision == "approve")


async def approve_menu(interaction: discord.Interaction, message: discord.Message) -> None:
    await decide_from_menu(interaction, message, approved=True)


async def reject_menu(interaction: discord.Interaction, message: discord.Message) -> None:
    await decide_from_menu(interaction, message, approved=False)


async def decide_from_menu(interaction: discord.Interaction, message: discord.Message, approved: bool) -> None:
    if not is_moderator(interaction):
        await interaction.response.send_message(NOT_A_MODERATOR, ephemeral=True)
        return
    reply = await reply_of_message(interaction, message)
    if reply is not None:
        await record_decision(interaction, reply, approved)


@app_commands.command(name="reset", description="Moderators: Inosuke forgets this channel's conversation so far")
@app_commands.default_permissions(manage_messages=True)
async def reset(interaction: discord.Interaction) -> None:
    # In a DM the user is the only one talking: they may reset their own conversation.
    if interaction.guild_id is not None and not is_moderator(interaction):
        await interaction.response.send_message(NOT_A_MODERATOR, ephemeral=True)
        return
    await interaction.client.runtime.history.reset(interaction.channel_id)
    await interaction.response.send_message(RESET_DONE)  # public: everyone here should know


class ForgetMeConfirmation(discord.ui.View):
    """Two buttons under an ephemeral question; only the user who asked can press them."""

    def __init__(self, user_id: int):
        super().__init__(timeout=120)
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Yes, forget me", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        messages, ratings = await ratings_of(interaction).forget_user(interaction.user.id)
        self.stop()
        await interaction.response.edit_message(
            content=f"Done. Deleted {messages} message(s) and {ratings} rating(s) of yours. Nothing you write will "
                    f"ever be used for training. (I still read new messages to answer you; run /forget-me again "
                    f"to delete them.)", view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing deleted. HAH! You can't escape Lord Inosuke!", view=None)


@app_commands.command(name="forget-me", description="Delete your messages and ratings, and never use them for training")
async def forget_me(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        "This deletes every message and rating of yours that I stored, in every channel, and keeps everything you "
        "write out of training from now on. Sure?", view=ForgetMeConfirmation(interaction.user.id), ephemeral=True)


def format_uptime(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


@app_commands.command(name="inosuke", description="Which engine and adapter are serving, the queue, the uptime")
async def status(interaction: discord.Interaction) -> None:
    runtime = interaction.client.runtime
    version = runtime.worker.version or "none (base model)"
    shard = interaction.client.shard_for(interaction.guild_id)
    where = f"\nShard: {shard} of {interaction.client.shard_count}" if shard is not None else ""
    await interaction.response.send_message(
        f"Engine: {runtime.worker.describe()}\nAdapter: {version}\nQueue: {runtime.worker.queue_length} waiting\nUptime: {format_uptime(runtime.uptime_s)}{where}",
        ephemeral=True)


def install(tree: app_commands.CommandTree) -> None:
    for command in (rate, approve, reset, forget_me, status):
        tree.add_command(command)
    for name, callback in (("Approve for training", approve_menu), ("Reject for training", reject_menu)):
        menu = app_commands.ContextMenu(name=name, callback=callback)
        menu.default_permissions = discord.Permissions(manage_messages=True)
        menu.guild_only = True
        tree.add_command(menu)
