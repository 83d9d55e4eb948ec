"""Drop channels.enabled: never read or written (the channels a bot answers everywhere are its
config's discord.enabled_channels, one source of truth).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("enabled")


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.false()))
