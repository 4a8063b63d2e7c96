"""Anthropic message batches: one row per batch, owning one job per model.

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("purge_at", sa.Float(), nullable=False),
        sa.Column("cancel_initiated_at", sa.Float(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("job_ids", sa.JSON(), nullable=False),
        sa.Column("request_jobs", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_message_batches_tenant_created", "message_batches", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_batches_tenant_created", table_name="message_batches")
    op.drop_table("message_batches")
