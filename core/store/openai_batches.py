"""OpenAI batches in the database: expiry at the end of the completion window, and the
finalize, the job task (core.store.job_tasks) under whose lease a worker writes a finished
batch's output and error files."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import states
from core.store.job_tasks import (
    JOB_TASK_RELEASED,
    claim_job_tasks,
    hold_job_task,
    load_job_task,
    update_if_task_held,
)
from core.store.jobs import STOPPABLE, stop_job
from core.store.webhook_outbox import enqueue_job_event
from core.tables import Job


def expire_overdue(*, session: Session, now: float, limit: int = 50) -> list[str]:
    """Stop batches whose completion window has passed; they end `expired` once their
    running chunks have stopped and their files are written. Returns their ids."""
    q = (
        select(Job)
        .where(Job.deadline_at < now, Job.status.in_(STOPPABLE))
        .order_by(Job.deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    out = []
    for job in session.scalars(q):
        stop_job(session=session, job=job, now=now, ends_as=states.EXPIRED)
        out.append(job.id)
    return out


def has_finalizing(*, session: Session) -> bool:
    """Whether any batch waits for its files (a cheap read before a write transaction)."""
    found = session.scalar(select(Job.id).where(Job.status == states.FINALIZING).limit(1))
    return found is not None


def claim_finalizes(
    *, session: Session, now: float, lease: float, max_attempts: int, limit: int = 2
) -> list[tuple[str, str]]:
    """(job id, token) of finalizing batches no live finalize holds, of any model: the
    files need no model, so any worker may write them."""
    return claim_job_tasks(
        session=session,
        model=None,
        now=now,
        lease=lease,
        max_attempts=max_attempts,
        limit=limit,
        status=states.FINALIZING,
    )


def load_finalize(*, session: Session, job_id: str, token: str) -> Job | None:
    """The batch, if this token holds its finalize."""
    return load_job_task(session=session, job_id=job_id, token=token, status=states.FINALIZING)


def hold_finalize(*, session: Session, job_id: str, token: str, now: float, lease: float) -> bool:
    """Extend the finalize lease; False when it was lost."""
    return hold_job_task(
        session=session, job_id=job_id, token=token, status=states.FINALIZING, now=now, lease=lease
    )


def finish_finalize(
    *,
    session: Session,
    job_id: str,
    token: str,
    output_file_id: str | None,
    error_file_id: str | None,
    now: float,
) -> bool:
    """The files are written: the batch takes the status it was finalizing towards."""
    finished = update_if_task_held(
        session,
        job_id,
        token,
        states.FINALIZING,
        status=func.coalesce(Job.finish_as, states.COMPLETED),
        output_file_id=output_file_id,
        error_file_id=error_file_id,
        finished_at=now,
        updated_at=now,
        **JOB_TASK_RELEASED,
    )
    if finished:
        enqueue_job_event(session=session, job_id=job_id, now=now)
    return finished
