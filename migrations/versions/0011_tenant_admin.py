"""Tenant and key administration: tenant weights, disabling, quota overrides and the stored
bytes counter (filled from what is stored now); key names, expiry, last use and rotation;
the audit log. Keys stored without scopes get `read,submit`, what every key could do
before scopes existed.

Revision ID: 0011
Revises: 0012
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant_columns() -> list[sa.Column]:
    return [
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("disabled_at", sa.Float(), nullable=True),
        sa.Column("quota_queued_items", sa.BigInteger(), nullable=True),
        sa.Column("quota_concurrent_jobs", sa.Integer(), nullable=True),
        sa.Column("quota_stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("quota_uploads_per_minute", sa.Integer(), nullable=True),
        sa.Column("quota_submissions_per_minute", sa.Integer(), nullable=True),
    ]


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("replaced_by", sa.String(40), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        for column in _tenant_columns():
            batch.add_column(column)
    with op.batch_alter_table("api_keys") as batch:
        for column in _key_columns():
            batch.add_column(column)
    op.execute("UPDATE api_keys SET scopes = 'read,submit' WHERE scopes IS NULL OR scopes = ''")
    op.create_table(
        "tenant_usage",
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    )
    # The counter starts at what is stored now (the one scan it needs).
    op.execute(
        "INSERT INTO tenant_usage (tenant_id, stored_bytes) SELECT t.id, "
        "COALESCE((SELECT SUM(f.bytes) FROM files f "
        "WHERE f.tenant_id = t.id AND f.status = 'processed'), 0) + "
        "COALESCE((SELECT SUM(LENGTH(c.outputs)) FROM chunks c JOIN jobs j ON j.id = c.job_id "
        "WHERE j.tenant_id = t.id AND c.outputs IS NOT NULL), 0) FROM tenants t"
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("actor_tenant_id", sa.String(40), nullable=True),
        sa.Column("target_id", sa.String(40), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_events_tenant_id", "audit_events", ["tenant_id", "id"])
    op.create_index("ix_audit_events_action_id", "audit_events", ["action", "id"])
    op.create_index("ix_audit_events_actor_at", "audit_events", ["actor", "at"])


def downgrade() -> None:
    op.drop_table("tenant_usage")
    op.drop_index("ix_audit_events_actor_at", table_name="audit_events")
    op.drop_index("ix_audit_events_action_id", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant_id", table_name="audit_events")
    op.drop_table("audit_events")
    with op.batch_alter_table("api_keys") as batch:
        for column in reversed(_key_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("tenants") as batch:
        for column in reversed(_tenant_columns()):
            batch.drop_column(column.name)
