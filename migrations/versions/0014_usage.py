"""Usage counters: per tenant, UTC day, model, job and device kind, the items finished
and failed, tokens in and out, images, device-seconds and cache hits; moved in the
transactions that count a job's results (core/store/usage.py). No foreign key to jobs:
usage outlives the jobs retention removes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COUNTERS = ("items", "failed_items", "input_tokens", "output_tokens", "images", "cache_hits")


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("device", sa.String(16), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            for name in COUNTERS
        ),
        sa.Column("device_seconds", sa.Float(), nullable=False, server_default="0"),
    )
    op.create_index("ix_usage_counters_day", "usage_counters", ["day"])


def downgrade() -> None:
    op.drop_index("ix_usage_counters_day", table_name="usage_counters")
    op.drop_table("usage_counters")
