"""Anthropic message batches in the database: creation (the batch row and one job per
model, in one transaction), lookup, cursor listing, cancellation and deletion. A batch's
status and counts are its jobs'; every lookup is scoped to the tenant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from core.contracts.anthropic_requests import MESSAGES_ENDPOINT
from core.ids import new_id
from core.store.jobs import STOPPABLE, JobSpec, cancel_job, create_job
from core.store.stored_bytes import release_sizes, result_sizes
from core.tables import Chunk, Job, MessageBatch


@dataclass(frozen=True)
class MessageBatchSpec:
    """A checked message batch: its jobs (one per model, with their chunk rows) and, per
    request in order, the position of its job (compressed bytes)."""

    jobs: Sequence[tuple[JobSpec, list[dict[str, Any]]]]
    request_jobs: bytes
    total: int
    processing_seconds: float
    retention_seconds: float


def create_message_batch(
    *, session: Session, tenant_id: str, spec: MessageBatchSpec, now: float
) -> MessageBatch:
    """Insert the batch and its jobs with their chunks, in the caller's transaction; the
    jobs stop running at the batch's expiry (their deadline)."""
    expires_at = now + spec.processing_seconds
    job_ids = []
    for job_spec, rows in spec.jobs:
        job = create_job(session=session, tenant_id=tenant_id, spec=job_spec, chunks=rows)
        job.endpoint, job.deadline_at = MESSAGES_ENDPOINT, expires_at
        job_ids.append(job.id)
    batch = MessageBatch(
        id=new_id("msgbatch"),
        tenant_id=tenant_id,
        created_at=now,
        expires_at=expires_at,
        purge_at=now + spec.retention_seconds,
        total=spec.total,
        job_ids=job_ids,
        request_jobs=spec.request_jobs,
    )
    session.add(batch)
    session.flush()
    return batch


def get_message_batch(*, session: Session, tenant_id: str, batch_id: str) -> MessageBatch | None:
    """The tenant's batch, or None (another tenant's is not found either)."""
    return session.scalar(
        select(MessageBatch).where(MessageBatch.id == batch_id, MessageBatch.tenant_id == tenant_id)
    )


def batch_jobs(*, session: Session, batch: MessageBatch) -> list[Job]:
    """The batch's jobs, in the order of its job_ids (a job removed by retention is
    missing)."""
    found = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(batch.job_ids)))}
    return [found[i] for i in batch.job_ids if i in found]


def list_message_batches(
    *,
    session: Session,
    tenant_id: str,
    limit: int,
    before_id: str | None = None,
    after_id: str | None = None,
) -> list[MessageBatch]:
    """Up to `limit` of the tenant's batches, newest first: those just older than
    after_id, or just newer than before_id (an unknown cursor gives none)."""
    q = select(MessageBatch).where(MessageBatch.tenant_id == tenant_id)
    cursor_id = after_id or before_id
    newest_first = before_id is None
    if cursor_id:
        cursor = session.scalar(
            select(MessageBatch.created_at).where(
                MessageBatch.id == cursor_id, MessageBatch.tenant_id == tenant_id
            )
        )
        if cursor is None:
            return []
        if after_id:
            older = or_(
                MessageBatch.created_at < cursor,
                and_(MessageBatch.created_at == cursor, MessageBatch.id < cursor_id),
            )
            q = q.where(older)
        else:
            newer = or_(
                MessageBatch.created_at > cursor,
                and_(MessageBatch.created_at == cursor, MessageBatch.id > cursor_id),
            )
            q = q.where(newer)
    if newest_first:
        order = (MessageBatch.created_at.desc(), MessageBatch.id.desc())
    else:  # the page just newer than the cursor: its nearest items, shown newest first
        order = (MessageBatch.created_at.asc(), MessageBatch.id.asc())
    rows = list(session.scalars(q.order_by(*order).limit(limit)))
    return rows if newest_first else rows[::-1]


def cancel_message_batch(
    *, session: Session, tenant_id: str, batch_id: str, now: float
) -> MessageBatch | None:
    """Ask every job of the batch to stop (idempotent); None if there is no such batch."""
    batch = session.scalar(
        select(MessageBatch)
        .where(MessageBatch.id == batch_id, MessageBatch.tenant_id == tenant_id)
        .with_for_update()
    )
    if batch is None:
        return None
    stoppable = [j for j in batch_jobs(session=session, batch=batch) if j.status in STOPPABLE]
    if stoppable and batch.cancel_initiated_at is None:  # an ended batch stays as it ended
        batch.cancel_initiated_at = now
    for job in stoppable:
        cancel_job(session=session, tenant_id=tenant_id, job_id=job.id)
    session.flush()
    return batch


def delete_message_batch(*, session: Session, batch: MessageBatch) -> None:
    """Delete the batch, its jobs and their chunks (results included, and taken off the
    tenant's stored bytes)."""
    sizes = result_sizes(session=session, where=Chunk.job_id.in_(batch.job_ids))
    session.execute(delete(Chunk).where(Chunk.job_id.in_(batch.job_ids)))
    session.execute(delete(Job).where(Job.id.in_(batch.job_ids)))
    session.execute(delete(MessageBatch).where(MessageBatch.id == batch.id))
    release_sizes(session=session, sizes=sizes)


def delete_expired_message_batches(*, session: Session, now: float, limit: int = 100) -> int:
    """Delete up to `limit` batches past their retention (their jobs expire with them)."""
    rows = list(
        session.scalars(
            select(MessageBatch).where(MessageBatch.purge_at < now).order_by(MessageBatch.purge_at)
        ).fetchmany(limit)
    )
    for batch in rows:
        delete_message_batch(session=session, batch=batch)
    return len(rows)
