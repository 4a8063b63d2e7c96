"""Rendering ORM rows into response bodies."""

from __future__ import annotations

import time

from api.schemas import Counts, JobOut, WebhookOut
from api.worker_presence import waiting_for_worker
from core import states
from core.tables import Job

# Columns a job's body shows as they are, and the optional times it shows in whole seconds.
_COPIED = (
    "id", "tenant_id", "model", "task", "status", "params", "priority", "input_file_id", "retry_of",
    "errors", "endpoint", "output_file_id", "error_file_id",
)  # fmt: skip
_TIMES = ("started_at", "finished_at", "cancelled_at")


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def job_out(job: Job, now: float | None = None) -> JobOut:
    """A job with its progress, throughput and ETA computed from its counts and clock, and
    whether it waits for a worker of its model (api.worker_presence)."""
    now = now or time.time()
    done = job.completed + job.failed
    throughput = eta = None
    if job.started_at is not None:
        end = job.finished_at or now
        elapsed = max(end - job.started_at, 1e-3)
        throughput = round(done / elapsed, 2)
        if job.status not in states.JOB_TERMINAL and throughput > 0:
            eta = round((job.total - done) / throughput, 1)
    body = {name: getattr(job, name) for name in _COPIED}
    body.update({name: _ts(getattr(job, name)) for name in _TIMES})
    return JobOut.model_validate(
        body
        | {
            "metadata": job.meta,
            "counts": Counts(
                total=job.total,
                completed=job.completed,
                failed=job.failed,
                cancelled=states.unrun_items(
                    job.status, total=job.total, completed=job.completed, failed=job.failed
                ),
            ),
            "progress": round(done / job.total, 4) if job.total else 1.0,
            "throughput": throughput,
            "eta_seconds": eta,
            "waiting_for_worker": waiting_for_worker(job, now),
            "created_at": int(job.created_at),
            "expires_at": int(job.expires_at),
            "usage": {
                "prompt_tokens": job.prompt_tokens or 0,
                "completion_tokens": job.completion_tokens or 0,
            },
            "webhook": (
                WebhookOut(url=job.webhook_url, has_secret=bool(job.webhook_secret))
                if job.webhook_url
                else None
            ),
        }
    )


def change_signature(job: Job) -> tuple[str, int, int, int]:
    """What a long-poll waits to see change, and what makes a watched job's new version."""
    return (job.status, job.total, job.completed, job.failed)
