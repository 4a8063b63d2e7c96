"""Indexes for the job lists and the dashboard: a job's status (leading, so the
housekeeper's per-tick status lookups use it too), a tenant's jobs of a status, newest
first, jobs that ended recently (the dashboard's live list), and every tenant's jobs,
newest first (an admin's list).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_jobs_status_created": ["status", "created_at"],
    "ix_jobs_tenant_status_created": ["tenant_id", "status", "created_at"],
    "ix_jobs_finished_at": ["finished_at"],
    "ix_jobs_created_at": ["created_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="jobs")
