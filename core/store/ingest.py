"""Jobs from files: creation (validating), the ingest under its job-task lease
(core.store.job_tasks), writing chunks, the verdict.

A worker that dies mid-ingest lets the lease lapse, the dispatcher hands the job to another
ingest (which starts over), and only the holder of the current token may write chunks or
move the job out of `validating`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from core import states
from core.ids import new_id
from core.store.job_tasks import (
    JOB_TASK_RELEASED,
    hold_job_task,
    load_job_task,
    update_if_task_held,
)
from core.store.jobs import settle_job_status
from core.store.stored_bytes import (
    add_job_stored_bytes,
    release_sizes,
    result_sizes,
    results_size,
)
from core.store.usage import UsageDelta, add_job_usage
from core.store.webhook_outbox import enqueue_job_event
from core.tables import Chunk, Job
from core.webhooks.targets import WebhookTarget


def create_file_job(
    *,
    session: Session,
    tenant_id: str,
    model: str,
    task: str,
    params: dict[str, Any],
    priority: int,
    metadata: dict[str, Any],
    input_file_id: str,
    lines: int,
    on_invalid: str,
    expires_after_seconds: float,
    retry_of: str | None = None,
    endpoint: str | None = None,
    completion_window: str | None = None,
    window_seconds: float | None = None,
    webhook: WebhookTarget | None = None,
) -> Job:
    """A job in `validating`, waiting for an ingest to read its file; with an endpoint, an
    OpenAI batch (its lines are requests to it) due within window_seconds. Its counts and
    task attempts start at their column defaults (0)."""
    now = time.time()
    job = Job(
        id=new_id("batch" if endpoint else "job"),
        endpoint=endpoint,
        completion_window=completion_window,
        deadline_at=now + window_seconds if window_seconds else None,
        tenant_id=tenant_id,
        model=model,
        task=task,
        params=params,
        meta=metadata,
        priority=priority,
        status=states.VALIDATING,
        total=lines,
        created_at=now,
        updated_at=now,
        expires_at=now + expires_after_seconds,
        input_file_id=input_file_id,
        on_invalid=on_invalid,
        retry_of=retry_of,
        webhook_url=webhook.url if webhook else None,
        webhook_secret=webhook.secret if webhook else None,
    )
    session.add(job)
    session.flush()
    return job


def has_validating(*, session: Session, model: str) -> bool:
    """Whether any job of the model waits for its file to be checked (a cheap read, so
    dispatch rounds open no write transaction for ingests when there are none)."""
    return (
        session.scalar(
            select(Job.id).where(Job.model == model, Job.status == states.VALIDATING).limit(1)
        )
        is not None
    )


def hold_ingest(*, session: Session, job_id: str, token: str, now: float, lease: float) -> bool:
    """Extend the ingest lease; False when it was lost (stop)."""
    return hold_job_task(
        session=session, job_id=job_id, token=token, status=states.VALIDATING, now=now, lease=lease
    )


def load_ingest(*, session: Session, job_id: str, token: str) -> Job | None:
    """The job, if this token holds its ingest."""
    return load_job_task(session=session, job_id=job_id, token=token, status=states.VALIDATING)


def clear_chunks(*, session: Session, job_id: str) -> None:
    """Remove what an earlier, interrupted ingest wrote."""
    sizes = result_sizes(session=session, where=Chunk.job_id == job_id)
    session.execute(delete(Chunk).where(Chunk.job_id == job_id))
    release_sizes(session=session, sizes=sizes)


def add_chunks(
    *,
    session: Session,
    job_id: str,
    token: str,
    rows: list[dict[str, Any]],
    now: float,
    lease: float,
) -> bool:
    """Insert chunk rows if the ingest still holds the job (and extend its lease)."""
    if not hold_ingest(session=session, job_id=job_id, token=token, now=now, lease=lease):
        return False
    if rows:
        session.execute(insert(Chunk), [{**row, "job_id": job_id} for row in rows])
        # The error lines of invalid items are results from the start.
        add_job_stored_bytes(session=session, job_id=job_id, delta=results_size(rows))
    return True


def accept_ingest(
    *,
    session: Session,
    job_id: str,
    token: str,
    total: int,
    failed: int,
    chunk_count: int,
    errors: dict[str, Any] | None,
    now: float,
) -> bool:
    """The file is valid (or its invalid lines are skipped): the job is queued."""
    if not update_if_task_held(
        session,
        job_id,
        token,
        status=states.QUEUED,
        total=total,
        failed=failed,
        chunk_count=chunk_count,
        errors=errors,
        updated_at=now,
        **JOB_TASK_RELEASED,
    ):
        return False
    # The skipped invalid lines are the job's failed items from the start.
    add_job_usage(session=session, job_id=job_id, now=now, delta=UsageDelta(failed_items=failed))
    settle_job_status(session=session, job_id=job_id, now=now)  # every item may be invalid
    return True


def reject_ingest(
    *, session: Session, job_id: str, token: str, errors: dict[str, Any], now: float
) -> bool:
    """The file is invalid: the job fails with its errors, and keeps no chunks."""
    if not update_if_task_held(
        session,
        job_id,
        token,
        status=states.FAILED,
        errors=errors,
        finished_at=now,
        updated_at=now,
        **JOB_TASK_RELEASED,
    ):
        return False
    clear_chunks(session=session, job_id=job_id)
    enqueue_job_event(session=session, job_id=job_id, now=now)
    return True
