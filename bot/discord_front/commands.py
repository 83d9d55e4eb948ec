"""Slash commands and message context menus: /rate, /approve (+ "Approve/Reject for training"
on a message), /reset, /forget-me, /inosuke.

Permissions are checked here, at run time, and not only through Discord's default member
permissions, which a server admin can override: a moderator is a member with Manage Messages in
the reply's own channel, or with one of the configured moderator roles (and able to see that
channel). A reply named by link or id is looked up only in the guild where the command runs (or
in the DM itself), and rating it needs read access to its channel. Rating ids are read only
from the bot's own messages.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Literal, Optional

import discord
from discord import app_commands

from bot.discord_front.rating import GONE, reply_id_from_buttons
from core.db.ratings import NotRatable, Ratings, ReplyRef, is_liked

log = logging.getLogger(__name__)

NOT_A_MODERATOR = "Only moderators can do that! (Manage Messages, or a moderator role.)"
NOT_A_MODERATOR_THERE = "Only moderators of the channel that reply lives in can do that!"
NO_REPLY_YET = "I haven't said anything in this channel yet. Nothing to rate!"
BAD_MESSAGE_REF = "That's not a message link or id. Right-click a message of mine > Copy Message Link."
FORGETTING = "Forgetting you... (this can take a few seconds)"
FORGET_ME_FAILED = ("Grr... something went wrong and I couldn't finish forgetting you. Run /forget-me again; "
                    "if it keeps failing, tell a server admin.")
RESET_DONE = "HAH! Forgot everything before this. Fresh start! Come at me!"
MESSAGE_LINK = re.compile(r"^(?:https://(?:\w+\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/\d+/)?(\d{15,21})/?$")


def ratings_of(interaction: discord.Interaction) -> Ratings:
    return interaction.client.runtime.ratings


def permissions_in(interaction: discord.Interaction, channel_id: int) -> discord.Permissions:
    """The user's permissions in another channel of this guild (from the guild cache), or in
    the interaction's own channel (from the interaction)."""
    if channel_id == interaction.channel_id:
        return interaction.permissions
    channel = interaction.guild.get_channel_or_thread(channel_id) if interaction.guild else None
    if channel is None or not isinstance(interaction.user, discord.Member):
        return discord.Permissions.none()
    return channel.permissions_for(interaction.user)


def is_moderator(interaction: discord.Interaction, channel_id: int | None = None) -> bool:
    """Manage Messages in `channel_id` (default: where the command runs), or a moderator role
    and sight of that channel."""
    user = interaction.user
    if not isinstance(user, discord.Member):  # a DM: there is no one to moderate
        return False
    permissions = permissions_in(interaction, interaction.channel_id if channel_id is None else channel_id)
    roles = set(interaction.client.settings.moderator_roles)
    return permissions.manage_messages or (permissions.view_channel and any(role.id in roles for role in user.roles))


def can_read(interaction: discord.Interaction, channel_id: int) -> bool:
    if interaction.guild is None:
        return channel_id == interaction.channel_id
    permissions = permissions_in(interaction, channel_id)
    return permissions.view_channel and permissions.read_message_history


def parse_message_ref(text: str) -> int:
    match = MESSAGE_LINK.match(text.strip())
    if not match:
        raise ValueError(text)
    return int(match[1])


async def resolve_reply(interaction: discord.Interaction, message_ref: str | None) -> ReplyRef | None:
    """The reply a command is about: the linked message (in this guild, or this DM), or the
    bot's latest reply in the channel. Answers the interaction itself (ephemerally) and returns
    None when there is none."""
    ratings = ratings_of(interaction)
    if message_ref is None:
        await interaction.client.runtime.pipeline.posted(interaction.channel_id)
        latest = await ratings.latest_reply(interaction.channel_id)
        reply = ReplyRef(latest, interaction.channel_id, interaction.guild_id) if latest is not None else None
        problem = NO_REPLY_YET
    else:
        try:
            reply = await ratings.find_reply(parse_message_ref(message_ref), guild_id=interaction.guild_id,
                                             channel_id=interaction.channel_id)
        except ValueError:
            reply, problem = None, BAD_MESSAGE_REF
        else:
            problem = GONE
    if reply is not None and not can_read(interaction, reply.channel_id):
        reply, problem = None, GONE  # a channel they cannot read: as if it did not exist
    if reply is None:
        await interaction.response.send_message(problem, ephemeral=True)
    return reply


async def reply_of_message(interaction: discord.Interaction, message: discord.Message) -> ReplyRef | None:
    """The reply a right-clicked message is: found by its Discord id, or (a later chunk of a
    split reply) by the rating buttons on it, read only from the bot's own messages."""
    ratings = ratings_of(interaction)
    reply = await ratings.find_reply(message.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id)
    if reply is None and message.author.id == interaction.client.user.id:
        from_buttons = reply_id_from_buttons(message)
        reply = await ratings.reply(from_buttons) if from_buttons is not None else None
        if reply is not None and reply.channel_id != message.channel.id:
            reply = None
    if reply is None:
        await interaction.response.send_message(GONE, ephemeral=True)
    return reply


async def record_decision(interaction: discord.Interaction, reply: ReplyRef, approved: bool) -> None:
    if not is_moderator(interaction, reply.channel_id):
        here = reply.channel_id == interaction.channel_id
        await interaction.response.send_message(NOT_A_MODERATOR if here else NOT_A_MODERATOR_THERE, ephemeral=True)
        return
    ratings = ratings_of(interaction)
    try:
        await ratings.decide(reply.id, interaction.user.id, approved)
    except NotRatable:
        await interaction.response.send_message(GONE, ephemeral=True)
        return
    s = await ratings.summary(reply.id)
    verdict = "Approved for training" if approved else "Rejected for training"
    await interaction.response.send_message(
        f"{verdict}: reply #{reply.id} (👍 {s.thumbs_up}, 👎 {s.thumbs_down}, {s.ratings} rating(s)).", ephemeral=True)


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
        changed = await ratings_of(interaction).rate(reply.id, interaction.user.id, score, comment=comment, via="command")
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
    reply = await resolve_reply(interaction, message)  # rights are checked in the reply's own channel
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
    await interaction.client.runtime.history.reset(interaction.channel_id, interaction.guild_id)
    interaction.client.runtime.worker.forget_conversations()
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
        import asyncio

        from core.staged_data import purge_replies

        self.stop()
        # Acknowledged first: for someone who wrote thousands of messages the deletion takes longer
        # than the 3 s Discord waits for an answer (it then shows "This interaction failed").
        await interaction.response.edit_message(content=FORGETTING, view=None)
        try:
            gone = await interaction.client.runtime.privacy.forget_user(interaction.user.id)
            interaction.client.runtime.worker.forget_conversations()  # the model's cached conversations too
            files, rows = await asyncio.to_thread(purge_replies, gone.touched_replies)
        except Exception:  # told, not left at "Forgetting you..." (the deletion is one transaction: all or nothing)
            log.exception("/forget-me failed for user %s", interaction.user.id)
            await interaction.edit_original_response(content=FORGET_ME_FAILED)
            return
        await interaction.edit_original_response(content=forgotten_text(gone, files, rows))

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing deleted. HAH! You can't escape Lord Inosuke!", view=None)


def forgotten_text(gone, files: int, rows: int) -> str:
    return (f"Done. Deleted {gone.messages} message(s) of yours, {gone.replies} repl(ies) of mine to you and "
            f"{gone.ratings} rating(s) of yours; {gone.approvals} moderator decision(s) no longer carry your id; "
            f"{gone.alternatives} swiped alternative(s) that could quote you deleted and {gone.picks} swipe pick(s) "
            f"of yours undone; "
            f"{rows} staged training sample(s) that held your words removed from {files} file(s). Nothing you write "
            f"will ever be used for training. An adapter already trained cannot unlearn what it learned. (I still "
            f"read new messages to answer you; run /forget-me again to delete them.)")


@app_commands.command(name="forget-me", description="Delete your messages and ratings, and never use them for training")
async def forget_me(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        "This deletes every message and rating of yours that I stored, in every channel, and my replies to you; "
        "takes your words out of training data waiting on disk; and keeps everything you write out of training "
        "from now on. An adapter already trained on your words cannot unlearn them. Sure?",
        view=ForgetMeConfirmation(interaction.user.id), ephemeral=True)


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
