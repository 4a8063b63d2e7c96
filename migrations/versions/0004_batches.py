"""OpenAI-compatible batches: endpoint, completion window, finalization, output files,
token usage; jobs listed by creation time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    ("endpoint", sa.String(40)),
    ("completion_window", sa.String(16)),
    ("deadline_at", sa.Float()),
    ("finalizing_at", sa.Float()),
    ("finish_as", sa.String(20)),
    ("output_file_id", sa.String(40)),
    ("error_file_id", sa.String(40)),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        for name in ("prompt_tokens", "completion_tokens"):
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
        batch.create_index("ix_jobs_tenant_created", ["tenant_id", "created_at"])
        batch.create_index("ix_jobs_deadline_at", ["deadline_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_deadline_at")
        batch.drop_index("ix_jobs_tenant_created")
        for name in ("completion_tokens", "prompt_tokens", *(c for c, _ in reversed(COLUMNS))):
            batch.drop_column(name)
