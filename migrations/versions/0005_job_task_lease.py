"""The job-level lease gets a general name: ingest_token, ingest_expires_at and
ingest_attempts become task_token, task_expires_at and task_attempts (they carry the lease
of a batch's finalize as well as of an ingest); values are copied across.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _columns(prefix: str) -> list[sa.Column]:
    return [
        sa.Column(f"{prefix}_token", sa.String(40), nullable=True),
        sa.Column(f"{prefix}_expires_at", sa.Float(), nullable=True),
        sa.Column(f"{prefix}_attempts", sa.Integer(), nullable=False, server_default="0"),
    ]


def _move(old: str, new: str) -> None:
    """Add the `new` lease columns, copy the `old` ones into them, drop the `old` ones."""
    with op.batch_alter_table("jobs") as batch:
        for column in _columns(new):
            batch.add_column(column)
    op.execute(
        f"UPDATE jobs SET {new}_token = {old}_token, {new}_expires_at = {old}_expires_at, "
        f"{new}_attempts = {old}_attempts"
    )
    with op.batch_alter_table("jobs") as batch:
        for name in ("attempts", "expires_at", "token"):
            batch.drop_column(f"{old}_{name}")


def upgrade() -> None:
    _move("ingest", "task")


def downgrade() -> None:
    _move("task", "ingest")
