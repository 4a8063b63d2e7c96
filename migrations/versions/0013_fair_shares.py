"""Weighted fair share: each tenant's due tag per model, and each model's dispatch clock
(core/fair_share.py). tenants.last_dispatched_at is no longer read; it stays, because
dropping a column rebuilds the table on SQLite.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-11
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fair_shares",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.Float(), nullable=False),
    )
    op.create_table(
        "dispatch_clocks",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("clock", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dispatch_clocks")
    op.drop_table("fair_shares")
