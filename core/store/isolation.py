"""Isolating an input that kills its worker: a chunk whose worker keeps dying while the
model's other chunks succeed is split in halves instead of failed whole, so the input that
kills (a segfault, an out-of-memory kill) ends up alone and fails alone, after
log2(chunk size) more deaths rather than taking its chunk's neighbours with it.

When no chunk of the model has succeeded lately (within the horizon the sweep passes,
ten leases), the fault is the workers', not an input's: the chunk fails whole, as before
(splitting then would only multiply the crashes), and a worker that turns bad mid-job
stops the splitting one horizon later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.orm import Session

from core import states
from core.codec import unpack_inputs_with_counts
from core.store.chunk_rows import chunk_row
from core.tables import Chunk, Job


def others_succeeded(session: Session, chunk: Chunk, since: float) -> bool:
    """Whether another chunk of the same model finished successfully since `since`."""
    done = exists().where(
        Chunk.model == chunk.model,
        Chunk.status == states.C_DONE,
        Chunk.finished_at > since,
        Chunk.id != chunk.id,
    )
    return bool(session.scalar(select(done)))


def split_chunk(
    session: Session, chunk: Chunk, still_expired: Any, now: float, attempts: int
) -> bool:
    """Replace a chunk (as the sweep read it) by two pending halves, each with `attempts`
    used; False if the chunk changed since it was read."""
    records, counts = unpack_inputs_with_counts(chunk.inputs)
    half = len(records) // 2
    rows = [
        {
            **chunk_row(
                model=chunk.model,
                seq=chunk.seq,
                bucket=chunk.bucket,
                records=records[part],
                token_counts=counts[part] if counts else None,
                attempts=attempts,
            ),
            "job_id": chunk.job_id,
        }
        for part in (slice(0, half), slice(half, None))
    ]
    gone = session.execute(delete(Chunk).where(still_expired(chunk, now)))
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(insert(Chunk), rows)
    session.execute(
        update(Job)
        .where(Job.id == chunk.job_id)
        .values(chunk_count=Job.chunk_count + 1, updated_at=now)
    )
    return True
