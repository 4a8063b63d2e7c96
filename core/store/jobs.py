"""Jobs: creation (with their chunks), lookup, listing, cancellation, settling their status."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from core import states
from core.contracts.anthropic_requests import MESSAGES_ENDPOINT
from core.ids import new_id
from core.store.stored_bytes import release_sizes, result_sizes
from core.store.webhook_outbox import enqueue_job_event
from core.tables import Chunk, Job
from core.webhooks.targets import WebhookTarget


@dataclass(frozen=True)
class JobSpec:
    """A validated job request: what the submission path hands to create_job."""

    model: str
    task: str
    items: Sequence[tuple[str | None, Any]]  # (custom_id, input), in input order
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = 512
    expires_after_seconds: float = 30 * 86400
    retry_of: str | None = None
    # Sort keys for length bucketing, one per item (None: keep input order).
    lengths: Sequence[int] | None = None
    bucket_window: int = 4096
    # The lengths are the model tokenizer's counts: chunks carry them, so a worker can
    # plan micro-batches before tokenising and tokenise one batch ahead of the model.
    lengths_are_tokens: bool = False
    # The most stored input (characters) a chunk may hold: images are large.
    max_chunk_bytes: int | None = None
    # Where its end is announced (None: the tenant's default webhook, if any).
    webhook: WebhookTarget | None = None


def create_job(
    *,
    session: Session,
    tenant_id: str,
    spec: JobSpec,
    chunks: list[dict[str, Any]],
) -> Job:
    """Insert a job and its chunk rows (core.submit.chunk_rows) in the caller's transaction;
    its done and failed counts start at their column defaults (0)."""
    now = time.time()
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        model=spec.model,
        task=spec.task,
        params=spec.params,
        meta=spec.metadata,
        priority=spec.priority,
        status=states.QUEUED,
        total=len(spec.items),
        chunk_count=len(chunks),
        created_at=now,
        updated_at=now,
        expires_at=now + spec.expires_after_seconds,
        retry_of=spec.retry_of,
        webhook_url=spec.webhook.url if spec.webhook else None,
        webhook_secret=spec.webhook.secret if spec.webhook else None,
    )
    session.add(job)
    session.flush()
    if chunks:
        session.execute(insert(Chunk), [{**row, "job_id": job.id} for row in chunks])
    return job


def get_job(*, session: Session, tenant_id: str | None, job_id: str) -> Job | None:
    """The tenant's job, or None (another tenant's job is not found either); with
    tenant_id None, any tenant's (for admin keys only)."""
    q = select(Job).where(Job.id == job_id)
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
    return session.scalar(q)


def list_jobs(
    *,
    session: Session,
    tenant_id: str | None,
    limit: int,
    after: str | None = None,
    batches_only: bool = False,
    status: str | None = None,
    model: str | None = None,
) -> list[Job]:
    """The tenant's jobs (or only its batches; only those of a status or a model when
    given), newest first, after the cursor job id; with tenant_id None, every tenant's (for
    admin keys only).

    Ordered by creation time, not id: batch ids and job ids have different prefixes.
    """
    q = select(Job)
    cursor_q = select(Job.created_at).where(Job.id == after)
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
        cursor_q = cursor_q.where(Job.tenant_id == tenant_id)
    if batches_only:
        q = q.where(Job.endpoint.is_not(None), Job.endpoint != MESSAGES_ENDPOINT)
    if status is not None:
        q = q.where(Job.status == status)
    if model is not None:
        q = q.where(Job.model == model)
    if after:
        cursor = session.scalar(cursor_q)
        if cursor is None:
            return []
        q = q.where(or_(Job.created_at < cursor, and_(Job.created_at == cursor, Job.id < after)))
    order = (Job.created_at.desc(), Job.id.desc())
    return list(session.scalars(q.order_by(*order).limit(limit)))


def chunk_status_counts(*, session: Session, job_id: str) -> dict[str, int]:
    """How many of a job's chunks are in each status."""
    rows = session.execute(
        select(Chunk.status, func.count()).where(Chunk.job_id == job_id).group_by(Chunk.status)
    )
    return {status: n for status, n in rows}


def _any_chunk(session: Session, job_id: str, statuses: frozenset[str]) -> bool:
    return bool(
        session.scalar(
            select(Chunk.id).where(Chunk.job_id == job_id, Chunk.status.in_(statuses)).limit(1)
        )
    )


def settle_job_status(*, session: Session, job_id: str, now: float) -> str | None:
    """Move the job to the status its chunks imply (conditional update): queued to in
    progress when a chunk has started, to its end (or a batch to finalizing) when none is
    open; return the status."""
    row = session.execute(
        select(Job.status, Job.endpoint, Job.finish_as).where(Job.id == job_id)
    ).first()
    if row is None:
        return None
    current, endpoint, finish_as = row
    if current in states.JOB_TERMINAL or current == states.FINALIZING:
        return current
    # Two index probes instead of counting every chunk of the job on each completion
    # (which made a job of thousands of chunks quadratic): is any chunk still open, and
    # (for a queued job) has any started?
    open_chunks = _any_chunk(session, job_id, states.CHUNK_OPEN)
    started = current == states.QUEUED and _any_chunk(session, job_id, states.CHUNK_STARTED)
    target = states.job_status_after_chunks(
        current, {states.C_PENDING: int(open_chunks), states.C_DONE: int(started)}
    )
    if target != current:
        values: dict[str, Any] = {"status": target, "updated_at": now}
        if target == states.IN_PROGRESS:
            values["started_at"] = now
        ends_as = states.finalizing_instead(
            # A message batch's results are rendered when they are read: no files.
            target,
            has_files=endpoint not in (None, MESSAGES_ENDPOINT),
            finish_as=finish_as,
        )
        if ends_as is not None:  # a batch writes its files first (worker/openai_finalize.py)
            target = states.FINALIZING
            values.update(
                status=target,
                finish_as=ends_as,
                finalizing_at=now,
                task_token=None,
                task_expires_at=None,
                task_attempts=0,
            )
        elif target in states.JOB_TERMINAL:
            values["finished_at"] = now
        moved = session.execute(
            update(Job).where(Job.id == job_id, Job.status == current).values(values)
        )
        if moved.rowcount == 1 and target in states.JOB_TERMINAL:  # type: ignore[attr-defined]
            enqueue_job_event(session=session, job_id=job_id, now=now)
    return target


def cancel_job(*, session: Session, tenant_id: str, job_id: str) -> Job | None:
    """Ask a job to stop: unstarted chunks are cancelled now, running ones at their next check.

    Idempotent: a job already finished or cancelling is returned unchanged.
    """
    # The row lock keeps a worker from moving the job (queued -> in_progress, -> completed)
    # between this read and the update below (PostgreSQL; SQLite writers are serial anyway).
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id).with_for_update()
    )
    if job is None or job.status not in STOPPABLE:
        return job
    return stop_job(session=session, job=job, now=time.time(), ends_as=states.CANCELLED)


# What cancellation (or a batch's expiry) can still stop.
STOPPABLE = frozenset({states.VALIDATING, states.QUEUED, states.IN_PROGRESS})


def stop_job(*, session: Session, job: Job, now: float, ends_as: str) -> Job:
    """Stop a job (locked by the caller) that is validating, queued or in progress; it
    ends `ends_as` (cancelled, or expired for a batch past its completion window)."""
    job_id = job.id
    if job.status == states.VALIDATING:  # nothing runs yet: ends at once, no chunks kept
        job.status, job.finished_at, job.updated_at = ends_as, now, now
        if ends_as == states.CANCELLED:
            job.cancelled_at = now
        job.task_token = job.task_expires_at = None
        session.flush()
        sizes = result_sizes(session=session, where=Chunk.job_id == job_id)
        session.execute(delete(Chunk).where(Chunk.job_id == job_id))
        release_sizes(session=session, sizes=sizes)
        enqueue_job_event(session=session, job_id=job_id, now=now)
        return job
    job.status, job.updated_at = states.CANCELLING, now
    if ends_as == states.CANCELLED:
        job.cancelled_at = now
    else:
        job.finish_as = ends_as
    session.flush()
    session.execute(
        update(Chunk)
        .where(Chunk.job_id == job_id, Chunk.status.in_([states.C_PENDING, states.C_QUEUED]))
        .values(status=states.C_CANCELLED, lease_token=None, lease_expires_at=None, finished_at=now)
    )
    settle_job_status(session=session, job_id=job_id, now=now)
    session.flush()
    session.refresh(job)
    return job


def is_cancel_requested(*, session: Session, job_id: str) -> bool:
    """Whether the job is being (or has been) cancelled."""
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    return status in (states.CANCELLING, states.CANCELLED, states.EXPIRED, None)
