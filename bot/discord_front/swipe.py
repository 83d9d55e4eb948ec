"""🔄 under every reply (beside 👍/👎), as a discord.py DynamicItem like the rating buttons
(`inosuke:swipe:42`, so it works across restarts): another reply to the same context, shown by
editing the bot's message in place with a footer `-# 2/3` (Character.AI / SillyTavern style).
Honoured with the rating buttons' checks (the bot's own message, a reply that lives in this
channel), only on the newest reply of the channel and only on a reply that fits one message.
Only the person the reply answered may swipe it, or a moderator; and once a moderator approved
or rejected it, only a moderator: showing another text withdraws that decision, and swiping
round back to a rejected text must not be a way for members to undo it.
The generation can take longer than Discord's 3 s to answer an interaction: the click is
acknowledged first (a deferred update), and the message is edited when the alternative is ready."""

from __future__ import annotations

import logging
import re

import discord

from bot.discord_front.commands import is_moderator
from bot.discord_front.rate_limit import SLOW_DOWN
from bot.discord_front.rating import GONE, rating_view
from bot.service.pipeline import SWIPE_GREEDY, SWIPE_NOT_NEWEST, SwipeRefused

log = logging.getLogger(__name__)

SWIPE_ID = r"inosuke:swipe:(?P<reply>[0-9]+)"
DISCORD_LIMIT = 2000
TOO_LONG_TO_SWIPE = "That reply was too long for one message: it can't be swiped."
NOT_YOURS_TO_SWIPE = "Only the one I answered (or a moderator) can swipe that reply!"
DECIDED_NO_SWIPE = "A moderator already decided on that reply: only a moderator can swipe it now."


def footer(position: int, count: int) -> str:
    """Which alternative the message shows, as Discord's small text under it."""
    return f"\n-# {position + 1}/{count}"


# The longest footer (25 alternatives at most, core/settings.py) fits beside the longest text.
MAX_ALTERNATIVE_CHARS = DISCORD_LIMIT - len(footer(24, 25))


class SwipeButton(discord.ui.DynamicItem[discord.ui.Button], template=SWIPE_ID):
    def __init__(self, reply_id: int):
        super().__init__(discord.ui.Button(style=discord.ButtonStyle.secondary, emoji="🔄",
                                           custom_id=f"inosuke:swipe:{reply_id}"))
        self.reply_id = reply_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]):
        return cls(int(match["reply"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        runtime = interaction.client.runtime
        pipeline = runtime.pipeline
        reply = await runtime.ratings.reply(self.reply_id)
        ours = interaction.message is not None and interaction.message.author.id == interaction.client.user.id
        if not ours or reply is None or reply.channel_id != interaction.channel_id:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        await pipeline.posted(reply.channel_id)  # a click the moment it appeared: its Discord id is being recorded
        # Refusals that need no model are told at once; the rest after the deferred update.
        refusal = None
        if not pipeline.worker.decoding.sampling:
            refusal = SWIPE_GREEDY
        elif await pipeline.swipes.posted_as(self.reply_id) != interaction.message.id:
            refusal = TOO_LONG_TO_SWIPE  # split over several messages: the buttons sit on the last one
        elif not await pipeline.swipes.is_newest(self.reply_id, reply.channel_id):
            refusal = SWIPE_NOT_NEWEST
        elif not is_moderator(interaction, reply.channel_id):
            asker, decided = await pipeline.swipes.asker_and_decided(self.reply_id)
            if decided:
                refusal = DECIDED_NO_SWIPE
            elif interaction.user.id != asker:
                refusal = NOT_YOURS_TO_SWIPE
        if (refusal is None and await pipeline.swipe_generates(self.reply_id)
                and not interaction.client.rate_limiter.allow(interaction.user.id)):
            refusal = SLOW_DOWN  # a swipe that writes a reply counts like a message; going round the written ones does not
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        await interaction.response.defer()
        try:
            shown = await pipeline.swipe(reply.channel_id, self.reply_id, MAX_ALTERNATIVE_CHARS)
        except SwipeRefused as refused:
            await interaction.followup.send(str(refused), ephemeral=True)
            return
        await interaction.edit_original_response(content=shown.content + footer(shown.position, shown.count))


def reply_view(reply_id: int, swipes: bool) -> discord.ui.View:
    """The buttons under a stored reply: 👍/👎, and 🔄 when swipes are on."""
    view = rating_view(reply_id)
    if swipes:
        view.add_item(SwipeButton(reply_id))
    return view
