"""Rendering ORM rows into response bodies."""

from __future__ import annotations

import time

from api.schemas import Counts, JobOut
from core import states
from core.tables import Job


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def job_out(job: Job, now: float | None = None) -> JobOut:
    """A job with its progress, throughput and ETA computed from its counts and clock."""
    now = now or time.time()
    done = job.completed + job.failed
    throughput = eta = None
    if job.started_at is not None:
        end = job.finished_at or now
        elapsed = max(end - job.started_at, 1e-3)
        throughput = round(done / elapsed, 2)
        if job.status not in states.JOB_TERMINAL and throughput > 0:
            eta = round((job.total - done) / throughput, 1)
    return JobOut(
        id=job.id,
        model=job.model,
        task=job.task,
        status=job.status,
        params=job.params,
        priority=job.priority,
        metadata=job.meta,
        counts=Counts(total=job.total, completed=job.completed, failed=job.failed),
        progress=round(done / job.total, 4) if job.total else 1.0,
        throughput=throughput,
        eta_seconds=eta,
        created_at=int(job.created_at),
        started_at=_ts(job.started_at),
        finished_at=_ts(job.finished_at),
        cancelled_at=_ts(job.cancelled_at),
        expires_at=int(job.expires_at),
        input_file_id=job.input_file_id,
        retry_of=job.retry_of,
        errors=job.errors,
        usage={
            "prompt_tokens": job.prompt_tokens or 0,
            "completion_tokens": job.completion_tokens or 0,
        },
        endpoint=job.endpoint,
        output_file_id=job.output_file_id,
        error_file_id=job.error_file_id,
    )


def change_signature(job: Job) -> tuple[str, int, int]:
    """What a long-poll waits to see change."""
    return (job.status, job.completed, job.failed)
