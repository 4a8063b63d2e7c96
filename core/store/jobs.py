"""Jobs: creation (with their chunks), lookup, listing, cancellation, finishing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from core import states
from core.chunking import cut_chunks
from core.codec import InputRecord, pack_inputs
from core.ids import new_id
from core.tables import Chunk, Job


@dataclass(frozen=True)
class JobSpec:
    """A validated job request: what the API hands to create_job."""

    model: str
    task: str
    items: Sequence[tuple[str | None, Any]]  # (custom_id, input), in input order
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = 512
    expires_after_seconds: float = 30 * 86400


def create_job(*, session: Session, tenant_id: str, spec: JobSpec) -> Job:
    """Insert a job and all its chunks in the caller's transaction (all or nothing)."""
    now = time.time()
    records: list[InputRecord] = [(i, cid, x) for i, (cid, x) in enumerate(spec.items)]
    pieces = cut_chunks(records, spec.chunk_size)
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        model=spec.model,
        task=spec.task,
        params=spec.params,
        meta=spec.metadata,
        priority=spec.priority,
        status=states.QUEUED,
        total=len(records),
        completed=0,
        failed=0,
        chunk_count=len(pieces),
        created_at=now,
        updated_at=now,
        expires_at=now + spec.expires_after_seconds,
    )
    session.add(job)
    session.flush()
    if pieces:
        session.execute(
            insert(Chunk),
            [
                {
                    "job_id": job.id,
                    "model": spec.model,
                    "seq": seq,
                    "status": states.C_PENDING,
                    "n_items": len(piece),
                    "inputs": pack_inputs(piece),
                    "completed": 0,
                    "failed": 0,
                    "attempts": 0,
                }
                for seq, piece in enumerate(pieces)
            ],
        )
    return job


def get_job(*, session: Session, tenant_id: str, job_id: str) -> Job | None:
    """The tenant's job, or None (another tenant's job is not found either)."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


def list_jobs(
    *, session: Session, tenant_id: str, limit: int, after: str | None = None
) -> list[Job]:
    """The tenant's jobs, newest first, starting after the cursor job id."""
    q = select(Job).where(Job.tenant_id == tenant_id)
    if after:
        q = q.where(Job.id < after)
    return list(session.scalars(q.order_by(Job.id.desc()).limit(limit)))


def chunk_status_counts(*, session: Session, job_id: str) -> dict[str, int]:
    """How many of a job's chunks are in each status."""
    rows = session.execute(
        select(Chunk.status, func.count()).where(Chunk.job_id == job_id).group_by(Chunk.status)
    )
    return {status: n for status, n in rows}


def finish_job_if_done(*, session: Session, job_id: str, now: float) -> str | None:
    """Move the job to the status its chunks imply (conditional update); return it."""
    current = session.scalar(select(Job.status).where(Job.id == job_id))
    if current is None:
        return None
    target = states.job_status_after_chunks(
        current, chunk_status_counts(session=session, job_id=job_id)
    )
    if target != current:
        values: dict[str, Any] = {"status": target, "updated_at": now}
        if target == states.IN_PROGRESS:
            values["started_at"] = now
        if target in states.JOB_TERMINAL:
            values["finished_at"] = now
        session.execute(update(Job).where(Job.id == job_id, Job.status == current).values(values))
    return target


def cancel_job(*, session: Session, tenant_id: str, job_id: str) -> Job | None:
    """Ask a job to stop: unstarted chunks are cancelled now, running ones at their next check.

    Idempotent: a job already finished or cancelling is returned unchanged.
    """
    job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job is None or job.status in states.JOB_TERMINAL or job.status == states.CANCELLING:
        return job
    now = time.time()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == job.status)
        .values(status=states.CANCELLING, cancelled_at=now, updated_at=now)
    )
    session.execute(
        update(Chunk)
        .where(Chunk.job_id == job_id, Chunk.status.in_([states.C_PENDING, states.C_QUEUED]))
        .values(status=states.C_CANCELLED, lease_token=None, lease_expires_at=None, finished_at=now)
    )
    finish_job_if_done(session=session, job_id=job_id, now=now)
    session.flush()
    session.refresh(job)
    return job


def is_cancel_requested(*, session: Session, job_id: str) -> bool:
    """Whether the job is being (or has been) cancelled."""
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    return status in (states.CANCELLING, states.CANCELLED, states.EXPIRED, None)


def done_chunk_outputs(
    *, session: Session, job_id: str, after_seq: int, limit: int
) -> list[tuple[int, bytes | None]]:
    """(seq, outputs) of the job's chunks after a seq, in order; outputs None while unfinished."""
    rows = session.execute(
        select(Chunk.seq, Chunk.outputs)
        .where(Chunk.job_id == job_id, Chunk.seq > after_seq)
        .order_by(Chunk.seq)
        .limit(limit)
    )
    return [(seq, out) for seq, out in rows]
