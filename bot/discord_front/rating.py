"""👍/👎 under every reply, as discord.py DynamicItems: the reply's database id lives in the
button's custom_id (`inosuke:rate:up:42`), so buttons sent before a restart still work after it
with no per-message state kept anywhere."""

from __future__ import annotations

import logging
import re

import discord

from core.db.ratings import THUMB_DOWN, THUMB_UP, NotRatable

log = logging.getLogger(__name__)

RATE_ID = r"inosuke:rate:(?P<vote>up|down):(?P<reply>[0-9]+)"
VOTES = {"up": ("👍", THUMB_UP), "down": ("👎", THUMB_DOWN)}

THANKS = {  # in character; the rating itself is told plainly after it
    "up": "HAH! Of course it was good! Lord Inosuke is the best!",
    "down": "Grr... FINE. I'll train harder in the mountains!",
}
GONE = "That reply isn't in my memory any more (deleted, or never mine)."


class RateButton(discord.ui.DynamicItem[discord.ui.Button], template=RATE_ID):
    def __init__(self, vote: str, reply_id: int):
        emoji, _ = VOTES[vote]
        super().__init__(discord.ui.Button(style=discord.ButtonStyle.secondary, emoji=emoji,
                                           custom_id=f"inosuke:rate:{vote}:{reply_id}"))
        self.vote, self.reply_id = vote, reply_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]):
        return cls(match["vote"], int(match["reply"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        emoji, score = VOTES[self.vote]
        # Honoured only on the bot's own message, for a reply that lives in this very channel.
        reply = await interaction.client.runtime.ratings.reply(self.reply_id)
        ours = interaction.message is not None and interaction.message.author.id == interaction.client.user.id
        if not ours or reply is None or reply.channel_id != interaction.channel_id:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        try:
            changed = await interaction.client.runtime.ratings.rate(self.reply_id, interaction.user.id, score, via="button")
        except NotRatable:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        # On a swiped reply the thumb also picks (👍) or rejects (👎) the alternative shown.
        swipes = interaction.client.runtime.pipeline.swipes
        await (swipes.pick if self.vote == "up" else swipes.reject)(self.reply_id, interaction.user.id)
        said = "changed your rating to" if changed else "rated this reply"
        await interaction.response.send_message(f"{THANKS[self.vote]}\n-# You {said} {emoji}.", ephemeral=True)


def rating_view(reply_id: int) -> discord.ui.View:
    """The buttons to attach to a stored reply."""
    view = discord.ui.View(timeout=None)
    view.add_item(RateButton("up", reply_id))
    view.add_item(RateButton("down", reply_id))
    return view


def reply_id_from_buttons(message: discord.Message) -> int | None:
    """The reply a bot message belongs to, read from its rating buttons. A split reply carries
    them on its last chunk; its first chunk is found by the Discord id stored with the reply."""
    for row in message.components:
        for child in getattr(row, "children", []):
            match = re.fullmatch(RATE_ID, getattr(child, "custom_id", None) or "")
            if match:
                return int(match["reply"])
    return None
