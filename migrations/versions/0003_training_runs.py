"""Retraining runs: what data went in, how the candidate scored against the adapter in service,
and whether it was promoted (and why).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),  # running, promoted, rejected, failed
        sa.Column("profile", sa.String(100), nullable=False),
        sa.Column("candidate_version", sa.String(40), nullable=True),
        sa.Column("previous_version", sa.String(40), nullable=True),
        sa.Column("curated_samples", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("approved_samples", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("preference_labels", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_reply_id", sa.Integer(), nullable=True),  # newest qualifying reply seen: "new since the last run"
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("training_runs")
