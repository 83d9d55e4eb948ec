"""What privacy and training need to know exactly:
- messages.answers_id: the message each reply answered (so /forget-me removes the replies to a
  user, and a reply is exported with its own prompt, never with an unrelated message);
- messages.sent: a reply is stored before it is posted (its buttons carry its id) and counts only
  once Discord took it; a reply that was never posted never enters context or training;
- context_resets: every /reset of a channel, not only the latest, so that training context
  stops at the boundary the bot saw when it wrote each reply;
- approvals.moderator_id may be empty: a moderator who used /forget-me leaves their decisions
  but no id of theirs.

Existing rows are backfilled: a reply answered the message just before it in its channel when
that one is a user's (otherwise it stays unlinked and is never exported); a reply in a server
channel with no Discord id was never posted; the latest reset of each channel is recorded.
Plain SQLAlchemy constructs only: the same revision runs on SQLite and PostgreSQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

messages = sa.table("messages", sa.column("id", sa.Integer()), sa.column("channel_id", sa.BigInteger()),
                    sa.column("by_bot", sa.Boolean()), sa.column("discord_id", sa.BigInteger()),
                    sa.column("answers_id", sa.Integer()), sa.column("sent", sa.Boolean()))
channels = sa.table("channels", sa.column("id", sa.BigInteger()), sa.column("guild_id", sa.BigInteger()),
                    sa.column("context_reset_at", sa.DateTime(timezone=True)))
approvals = sa.table("approvals", sa.column("moderator_id", sa.BigInteger()))


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("answers_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sent", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.create_foreign_key("fk_messages_answers_id", "messages", ["answers_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_messages_answers_id", ["answers_id"])
    with op.batch_alter_table("approvals") as batch:
        batch.alter_column("moderator_id", existing_type=sa.BigInteger(), nullable=True)
    op.create_table(
        "context_resets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel_id", sa.BigInteger(), sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_context_resets_channel_at", "context_resets", ["channel_id", "reset_at"])

    # Backfill. The message before each reply in its channel ...
    earlier = messages.alias("earlier")
    before = (sa.select(sa.func.max(earlier.c.id))
              .where(earlier.c.channel_id == messages.c.channel_id, earlier.c.id < messages.c.id).scalar_subquery())
    op.execute(messages.update().where(messages.c.by_bot == sa.true()).values(answers_id=before))
    # ... is what it answered only when a user wrote it (a bot line there means the user's message is gone).
    by_bot = sa.select(earlier.c.id).where(earlier.c.by_bot == sa.true())
    op.execute(messages.update().where(messages.c.answers_id.in_(by_bot)).values(answers_id=None))
    server_channels = sa.select(channels.c.id).where(channels.c.guild_id.is_not(None))
    op.execute(messages.update().where(messages.c.by_bot == sa.true(), messages.c.discord_id.is_(None),
                                       messages.c.channel_id.in_(server_channels)).values(sent=False))
    resets = sa.table("context_resets", sa.column("channel_id", sa.BigInteger()), sa.column("reset_at", sa.DateTime(timezone=True)))
    op.execute(resets.insert().from_select(
        ["channel_id", "reset_at"],
        sa.select(channels.c.id, channels.c.context_reset_at).where(channels.c.context_reset_at.is_not(None))))


def downgrade() -> None:
    # channels.context_reset_at already holds each channel's latest reset; decisions of forgotten
    # moderators get moderator 0 (the column was required before this revision).
    op.drop_index("ix_context_resets_channel_at", table_name="context_resets")
    op.drop_table("context_resets")
    op.execute(approvals.update().where(approvals.c.moderator_id.is_(None)).values(moderator_id=0))
    with op.batch_alter_table("approvals") as batch:
        batch.alter_column("moderator_id", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_answers_id")
        batch.drop_constraint("fk_messages_answers_id", type_="foreignkey")
        batch.drop_column("sent")
        batch.drop_column("answers_id")
