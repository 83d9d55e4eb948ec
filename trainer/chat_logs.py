"""Approved chat logs become training data, and ratings become preference labels.

A reply qualifies when a moderator approved it, or by the rating rules (at least N 👍 and at
most M 👎, from config/retrain.yaml); a rejected reply never does; only replies from the guilds
in `training_guilds` count. Each qualifying reply becomes a multi-turn sample with the context
it was generated from: the channel's messages up to the one it answered, since the /reset before
that one, labelled and cut to the token budget exactly as the bot did (core.db.history's
context_query and core.context). A reply whose message is gone (deleted, forgotten, or never
linked) is not used. Users who opted out (/forget-me) are excluded everywhere: their lines are
dropped from every context, a reply to one of their messages is not used at all, and their
ratings do not count.

Swiped replies (🔄, core/db/swipes.py) give preference pairs for the DPO stage: for a reply with
two or more alternatives of which one was picked, (the prompt rendered from that reply's context,
the chosen alternative, each rejected one), under the same rules: its guild must be in
`training_guilds`, it must not answer an opted-out user or a message that is gone, picks by
opted-out users do not count, and a reply a moderator rejected gives none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from core.context import fit_prompt, turns_from_history
from core.db.schema import Approval, Channel, Message, OptOut, Rating, ReplyAlternative
from core.db.history import StoredMessage, context_query, stored
from core.db.ratings import is_disliked, is_liked
from core.files import write_jsonl
from core.persona import PersonaCard
from core.prompt import Turn
from core.settings import ChatSettings


@dataclass(frozen=True)
class LogRules:
    """Which replies qualify (the rating rule of config/retrain.yaml) and how their context is
    cut (the bot's own window: `chat:` in the bot's config)."""

    min_thumbs_up: int  # a reply nobody moderated qualifies with at least this many 👍 ...
    max_thumbs_down: int  # ... and at most this many 👎
    chat: ChatSettings = field(default_factory=ChatSettings)
    training_guilds: list[int] | Literal["all"] = "all"  # guilds whose approvals and ratings count ("all": every guild and DMs)

    def counts(self, guild_id: int | None) -> bool:
        return self.training_guilds == "all" or (guild_id is not None and guild_id in self.training_guilds)


@dataclass
class LogSample:
    reply_id: int
    channel_id: int
    turns: list[Turn]  # context, then the reply
    why: str  # "approved" or "ratings"


@dataclass
class Preference:
    reply_id: int
    prompt: str  # the generation prompt the reply answered (the adapter's own format)
    completion: str
    label: bool  # desirable or not


@dataclass
class PreferencePair:
    reply_id: int
    prompt: str  # the generation prompt every alternative of the reply answered
    chosen: str
    rejected: str


@dataclass
class LogExport:
    samples: list[LogSample] = field(default_factory=list)
    preferences: list[Preference] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)  # from swipes
    rejected: int = 0  # replies a moderator rejected
    excluded_opted_out: int = 0  # qualifying replies dropped because they answered an opted-out user
    excluded_unlinked: int = 0  # ... because the message they answered is gone (deleted, forgotten, never linked)
    excluded_guild: int = 0  # ... because their guild is not in training_guilds
    opted_out_users: set[int] = field(default_factory=set)
    last_reply_id: int | None = None  # newest qualifying reply (for "new since the last run")

    def sample_rows(self) -> list[dict]:
        """The samples in the data pipeline's chat format (trainer/dataset/validate.py)."""
        rows = []
        for sample in self.samples:
            messages = []
            for turn in sample.turns:
                message = {"role": "assistant" if turn.by_persona else "user", "content": turn.text}
                if turn.speaker and not turn.by_persona:
                    message["name"] = turn.speaker
                messages.append(message)
            rows.append({"messages": messages, "reply_id": sample.reply_id})
        return rows


def collect(sessions, card: PersonaCard, tokenizer, rules: LogRules, prompt_format: str = "chat",
            since_reply_id: int | None = None) -> LogExport:
    """Read the bot's database: qualifying samples (all, or only replies newer than
    `since_reply_id`) and preference labels."""
    export = LogExport()
    with sessions() as session:
        export.opted_out_users = set(session.scalars(select(OptOut.user_id)).all())
        decisions = {a.message_id: a.approved for a in session.scalars(select(Approval)).all()}
        ratings: dict[int, list[int]] = {}
        for rating in session.scalars(select(Rating)).all():
            if rating.user_id not in export.opted_out_users:
                ratings.setdefault(rating.message_id, []).append(rating.score)
        candidates = set(decisions) | set(ratings)
        replies = (session.scalars(select(Message).where(Message.id.in_(candidates), Message.by_bot, Message.sent)
                                         .order_by(Message.id))).all()
        guilds = {c.id: c.guild_id for c in session.scalars(select(Channel)).all()}

        for reply in replies:
            scores = ratings.get(reply.id, [])
            up, down = sum(map(is_liked, scores)), sum(map(is_disliked, scores))
            decision = decisions.get(reply.id)
            qualifies = decision is True or (decision is None and up >= rules.min_thumbs_up and down <= rules.max_thumbs_down)
            wanted = since_reply_id is None or reply.id > since_reply_id
            label = preference_label(decision, scores)
            if not (qualifies or label is not None):
                continue
            if not rules.counts(guilds.get(reply.channel_id)):
                export.excluded_guild += qualifies and wanted
                continue
            if decision is False:
                export.rejected += 1
            answered = session.get(Message, reply.answers_id) if reply.answers_id is not None else None
            if answered is None or answered.by_bot:
                export.excluded_unlinked += qualifies and wanted
                continue
            if answered.author_id in export.opted_out_users:
                # It answered an opted-out user: their words would be needed to make sense of it.
                export.excluded_opted_out += qualifies and wanted
                continue
            prompt, turns = rendered_context(session, answered, card, tokenizer, rules, prompt_format, export.opted_out_users)
            if qualifies and wanted:
                export.samples.append(LogSample(reply.id, reply.channel_id, turns + [Turn(reply.content, by_persona=True)],
                                                "approved" if decision is True else "ratings"))
                export.last_reply_id = reply.id
            if label is not None and wanted:
                export.preferences.append(Preference(reply.id, prompt, reply.content, label))
        export.pairs = swipe_pairs(session, card, tokenizer, rules, prompt_format, since_reply_id, export.opted_out_users,
                                   decisions, guilds)
    return export


def swipe_pairs(session, card: PersonaCard, tokenizer, rules: LogRules, prompt_format: str, since_reply_id: int | None,
                opted_out: set[int], decisions: dict[int, bool], guilds: dict[int, int | None]) -> list[PreferencePair]:
    """(prompt, chosen, rejected) for every swiped reply with a pick, under the rules above."""
    alternatives: dict[int, list[ReplyAlternative]] = {}
    for alternative in session.scalars(select(ReplyAlternative).order_by(ReplyAlternative.reply_id, ReplyAlternative.position)):
        alternatives.setdefault(alternative.reply_id, []).append(alternative)
    replies = session.scalars(select(Message).where(Message.id.in_(alternatives), Message.by_bot, Message.sent)
                              .order_by(Message.id)).all()
    pairs = []
    for reply in replies:
        counted = [a for a in alternatives[reply.id] if a.picked_by not in opted_out]
        chosen = [a.content for a in counted if a.chosen is True]
        rejected = [a.content for a in counted if a.chosen is False and a.content not in chosen]
        if not chosen or not rejected or (since_reply_id is not None and reply.id <= since_reply_id):
            continue
        if not rules.counts(guilds.get(reply.channel_id)) or decisions.get(reply.id) is False:
            continue
        answered = session.get(Message, reply.answers_id) if reply.answers_id is not None else None
        if answered is None or answered.by_bot or answered.author_id in opted_out:
            continue
        prompt, _ = rendered_context(session, answered, card, tokenizer, rules, prompt_format, opted_out)
        pairs.extend(PreferencePair(reply.id, prompt, chosen[0], worse) for worse in rejected)
    return pairs


def rendered_context(session, answered: Message, card: PersonaCard, tokenizer, rules: LogRules, prompt_format: str,
                     opted_out: set[int]) -> tuple[str, list[Turn]]:
    """The prompt of the bot's reply to `answered` and the turns it kept: the bot's own query,
    labels and token budget, with opted-out users' lines dropped."""
    context = context_before(session, answered, rules.chat.history_messages)
    context = [m for m in context if m.by_bot or m.author_id not in opted_out]
    turns = turns_from_history(context)  # labels exactly as the bot put them
    prompt, kept = fit_prompt(tokenizer, card, turns, rules.chat.context_tokens, prompt_format)
    return prompt, turns[len(turns) - kept:]


def preference_label(decision: bool | None, scores: list[int]) -> bool | None:
    """Liked (True), disliked (False) or neither: a moderator's decision wins; otherwise the mean
    score (4-5 liked, 1-2 disliked, a 3 says nothing)."""
    if decision is not None:
        return decision
    if not scores:
        return None
    mean = sum(scores) / len(scores)
    return True if is_liked(mean) else False if is_disliked(mean) else None


def context_before(session, answered: Message, limit: int) -> list[StoredMessage]:
    """The context the bot built for its reply to `answered`, oldest first (the bot's own query)."""
    rows = session.scalars(context_query(answered.channel_id, answered.id, answered.created_at, limit)).all()
    return [stored(m) for m in reversed(rows)]


def write_samples(export: LogExport, path: Path) -> Path:
    write_jsonl(path, export.sample_rows())
    return path
