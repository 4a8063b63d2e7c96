"""Length bucketing: chunks.bucket and chunks.item_indices.

Chunks written before this revision are contiguous and in input order; each becomes a
bucket of its own (bucket = seq), and its indices are read back from its inputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import json
import zlib
from array import array

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("bucket", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("item_indices", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    chunks = sa.table(
        "chunks",
        sa.column("id", sa.Integer()),
        sa.column("seq", sa.Integer()),
        sa.column("bucket", sa.Integer()),
        sa.column("inputs", sa.LargeBinary()),
        sa.column("item_indices", sa.LargeBinary()),
    )
    rows = conn.execute(sa.select(chunks.c.id, chunks.c.inputs)).fetchall()
    for chunk_id, inputs in rows:
        indices = array("I", (r[0] for r in json.loads(zlib.decompress(inputs))))
        conn.execute(
            chunks.update()
            .where(chunks.c.id == chunk_id)
            .values(item_indices=zlib.compress(indices.tobytes(), 1))
        )
    conn.execute(chunks.update().values(bucket=chunks.c.seq))
    with op.batch_alter_table("chunks") as batch:
        batch.alter_column("item_indices", existing_type=sa.LargeBinary(), nullable=False)
        batch.create_index("ix_chunks_job_bucket", ["job_id", "bucket"])


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_index("ix_chunks_job_bucket")
        batch.drop_column("item_indices")
        batch.drop_column("bucket")
