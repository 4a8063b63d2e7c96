"""Jobs from files: creation (validating), the ingest lease, writing chunks, the verdict.

The ingest of a job runs under a lease on the job row, as a chunk runs under its own: a
worker that dies mid-ingest lets the lease lapse, the dispatcher hands the job to another
ingest (which starts over), and only the holder of the current token may write chunks or
move the job out of `validating`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from core import states
from core.ids import new_id, new_token
from core.store.jobs import finish_job_if_done
from core.tables import Chunk, Job

# What ends an ingest's lease (as RELEASED ends a chunk's).
INGEST_RELEASED: dict[str, Any] = {"ingest_token": None, "ingest_expires_at": None}


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
) -> Job:
    """A job in `validating`, waiting for an ingest to read its file; with an endpoint, an
    OpenAI batch (its lines are requests to it) due within window_seconds."""
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
        completed=0,
        failed=0,
        chunk_count=0,
        created_at=now,
        updated_at=now,
        expires_at=now + expires_after_seconds,
        input_file_id=input_file_id,
        on_invalid=on_invalid,
        retry_of=retry_of,
        ingest_attempts=0,
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


def claim_ingests(
    *,
    session: Session,
    model: str | None,
    now: float,
    lease: float,
    max_attempts: int,
    limit: int = 4,
    status: str = states.VALIDATING,
) -> list[tuple[str, str]]:
    """(job id, token) of jobs in `status` (validating: to ingest; finalizing: to write
    a batch's files) of a model (None: any) that no live task holds, now leased to a new
    one; a job whose task has died max_attempts times fails instead."""
    free = or_(Job.ingest_token.is_(None), Job.ingest_expires_at < now)
    q = select(Job.id, Job.ingest_attempts, Job.ingest_token).where(Job.status == status, free)
    if model is not None:
        q = q.where(Job.model == model)
    rows = session.execute(q.order_by(Job.priority.desc(), Job.id).limit(limit)).all()
    out: list[tuple[str, str]] = []
    what = "validating the file" if status == states.VALIDATING else "writing the output files"
    for job_id, attempts, old_token in rows:
        same = (
            Job.id == job_id,
            Job.status == status,
            Job.ingest_token.is_(None) if old_token is None else Job.ingest_token == old_token,
        )
        if attempts >= max_attempts:
            error = {
                "code": "ingest_failed" if status == states.VALIDATING else "finalize_failed",
                "message": f"{what} failed {attempts} times",
            }
            session.execute(
                update(Job)
                .where(*same)
                .values(
                    status=states.FAILED,
                    errors={"data": [error], "invalid_lines": 0},
                    finished_at=now,
                    updated_at=now,
                    **INGEST_RELEASED,
                )
            )
            continue
        token = new_token()
        moved = session.execute(
            update(Job)
            .where(*same)
            .values(
                ingest_token=token,
                ingest_expires_at=now + lease,
                ingest_attempts=Job.ingest_attempts + 1,
                updated_at=now,
            )
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            out.append((job_id, token))
    return out


def _held(job_id: str, token: str, status: str = states.VALIDATING) -> Any:
    return (Job.id == job_id, Job.status == status, Job.ingest_token == token)


def update_if_held(
    session: Session, job_id: str, token: str, in_status: str = states.VALIDATING, **values: Any
) -> bool:
    """Update the job only while it is in `in_status` and this token holds its job-level
    task (the ingest while validating, the finalize while finalizing); whether it did."""
    moved = session.execute(update(Job).where(*_held(job_id, token, in_status)).values(**values))
    return moved.rowcount == 1  # type: ignore[attr-defined]


def hold_ingest(*, session: Session, job_id: str, token: str, now: float, lease: float) -> bool:
    """Extend the ingest lease; False when it was lost (stop)."""
    return update_if_held(session, job_id, token, ingest_expires_at=now + lease)


def load_ingest(*, session: Session, job_id: str, token: str) -> Job | None:
    """The job, if this token holds its ingest."""
    return session.scalar(select(Job).where(*_held(job_id, token)))


def clear_chunks(*, session: Session, job_id: str) -> None:
    """Remove what an earlier, interrupted ingest wrote."""
    session.execute(delete(Chunk).where(Chunk.job_id == job_id))


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
    if not update_if_held(
        session,
        job_id,
        token,
        status=states.QUEUED,
        total=total,
        failed=failed,
        chunk_count=chunk_count,
        errors=errors,
        updated_at=now,
        **INGEST_RELEASED,
    ):
        return False
    finish_job_if_done(session=session, job_id=job_id, now=now)  # every item may be invalid
    return True


def reject_ingest(
    *, session: Session, job_id: str, token: str, errors: dict[str, Any], now: float
) -> bool:
    """The file is invalid: the job fails with its errors, and keeps no chunks."""
    if not update_if_held(
        session,
        job_id,
        token,
        status=states.FAILED,
        errors=errors,
        finished_at=now,
        updated_at=now,
        **INGEST_RELEASED,
    ):
        return False
    clear_chunks(session=session, job_id=job_id)
    return True
