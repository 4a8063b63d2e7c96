"""The job-task lease: a job's job-level task (the ingest while it is validating, the
finalize of a batch while it is finalizing) runs under a lease on the job row, as a chunk
runs under its own. A worker that dies mid-task lets the lease lapse, the dispatcher hands
the job to a new task (which starts over), and only the holder of the current token may
move the job on; a job whose task has died too often fails.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core import states
from core.ids import new_token
from core.store.webhook_outbox import enqueue_job_event
from core.tables import Job

# What ends a job task's lease (as RELEASED ends a chunk's).
JOB_TASK_RELEASED: dict[str, Any] = {"task_token": None, "task_expires_at": None}


def claim_job_tasks(
    *,
    session: Session,
    model: str | None,
    now: float,
    lease: float,
    max_attempts: int,
    status: str,
    limit: int = 4,
) -> list[tuple[str, str]]:
    """(job id, token) of jobs in `status` (validating: to ingest; finalizing: to write
    a batch's files) of a model (None: any) that no live task holds, now leased to a new
    one; a job whose task has died max_attempts times fails instead."""
    free = or_(Job.task_token.is_(None), Job.task_expires_at < now)
    q = select(Job.id, Job.task_attempts, Job.task_token).where(Job.status == status, free)
    if model is not None:
        q = q.where(Job.model == model)
    rows = session.execute(q.order_by(Job.priority.desc(), Job.id).limit(limit)).all()
    out: list[tuple[str, str]] = []
    what = "validating the file" if status == states.VALIDATING else "writing the output files"
    for job_id, attempts, old_token in rows:
        same = (
            Job.id == job_id,
            Job.status == status,
            Job.task_token.is_(None) if old_token is None else Job.task_token == old_token,
        )
        if attempts >= max_attempts:
            error = {
                "code": "ingest_failed" if status == states.VALIDATING else "finalize_failed",
                "message": f"{what} failed {attempts} times",
            }
            failed = session.execute(
                update(Job)
                .where(*same)
                .values(
                    status=states.FAILED,
                    errors={"data": [error], "invalid_lines": 0},
                    finished_at=now,
                    updated_at=now,
                    **JOB_TASK_RELEASED,
                )
            )
            if failed.rowcount == 1:  # type: ignore[attr-defined]
                enqueue_job_event(session=session, job_id=job_id, now=now)
            continue
        token = new_token()
        moved = session.execute(
            update(Job)
            .where(*same)
            .values(
                task_token=token,
                task_expires_at=now + lease,
                task_attempts=Job.task_attempts + 1,
                updated_at=now,
            )
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            out.append((job_id, token))
    return out


def task_held(job_id: str, token: str, status: str = states.VALIDATING) -> Any:
    """The condition that the job is in `status` and `token` holds its job task."""
    return (Job.id == job_id, Job.status == status, Job.task_token == token)


def update_if_task_held(
    session: Session, job_id: str, token: str, in_status: str = states.VALIDATING, **values: Any
) -> bool:
    """Update the job only while it is in `in_status` and this token holds its job-level
    task (the ingest while validating, the finalize while finalizing); whether it did."""
    moved = session.execute(
        update(Job).where(*task_held(job_id, token, in_status)).values(**values)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined]


def hold_job_task(
    *, session: Session, job_id: str, token: str, status: str, now: float, lease: float
) -> bool:
    """Extend the lease of the job's task while the job is in `status`; False when it was
    lost (stop)."""
    return update_if_task_held(session, job_id, token, status, task_expires_at=now + lease)


def load_job_task(*, session: Session, job_id: str, token: str, status: str) -> Job | None:
    """The job, if it is in `status` and this token holds its job task."""
    return session.scalar(select(Job).where(*task_held(job_id, token, status)))
