"""Files (stored in parts) and jobs from files: ingest lease, validation errors, retries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_files_tenant_id_id", "files", ["tenant_id", "id"])
    op.create_index("ix_files_expires_at", "files", ["expires_at"])
    op.create_table(
        "file_parts",
        sa.Column(
            "file_id",
            sa.String(40),
            sa.ForeignKey("files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("input_file_id", sa.String(40), nullable=True))
        batch.add_column(
            sa.Column("on_invalid", sa.String(8), nullable=False, server_default="fail")
        )
        batch.add_column(sa.Column("errors", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.String(40), nullable=True))
        batch.add_column(sa.Column("ingest_token", sa.String(40), nullable=True))
        batch.add_column(sa.Column("ingest_expires_at", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("ingest_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_index("ix_jobs_expires_at", ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_expires_at")
        for name in (
            "ingest_attempts",
            "ingest_expires_at",
            "ingest_token",
            "retry_of",
            "errors",
            "on_invalid",
            "input_file_id",
        ):
            batch.drop_column(name)
    op.drop_table("file_parts")
    op.drop_index("ix_files_expires_at", table_name="files")
    op.drop_index("ix_files_tenant_id_id", table_name="files")
    op.drop_table("files")
