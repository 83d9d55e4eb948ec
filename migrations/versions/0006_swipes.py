"""Swipes: the alternatives 🔄 generated for one reply, and which one people picked.

reply_alternatives holds every alternative of a swiped reply (position 0 is the reply as first
written); the reply's own row (messages.content) always holds the one shown, so the live context,
the history and the ratings read the shown text with no change. `chosen` is True for the picked
alternative (👍 on it, or the conversation went on while it was shown), False for a rejected one
(👎, or another was picked), NULL while undecided; `picked_by` is the user whose action decided it
(their /forget-me clears it). A reply's alternatives go with it (ON DELETE CASCADE).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reply_alternatives",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reply_id", sa.Integer(), sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("adapter_version", sa.String(40), nullable=True),
        sa.Column("shown", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("chosen", sa.Boolean(), nullable=True),
        sa.Column("picked_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("reply_id", "position", name="uq_reply_alternatives_reply_position"),
    )


def downgrade() -> None:
    # The reply rows keep the alternative that was shown last; the others are dropped.
    op.drop_table("reply_alternatives")
