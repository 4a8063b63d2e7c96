"""Celery task registration: thin wrappers around the task bodies."""

from __future__ import annotations

from celery import Task

from core.celery_app import celery_app
from core.constants import FINALIZE_TASK, INGEST_TASK, QUEUED_AT_HEADER, RUN_CHUNK_TASK
from worker.context import get_context
from worker.ingest import run_ingest
from worker.openai_finalize import run_finalize
from worker.run_chunk import execute_chunk


@celery_app.task(name=RUN_CHUNK_TASK, ignore_result=True, bind=True)
def run_chunk(self: Task, chunk_id: int, token: str) -> str:
    """Run one chunk under its lease token (its message's header says when it was sent)."""
    queued_at = getattr(self.request, QUEUED_AT_HEADER, None)
    return execute_chunk(
        get_context(),
        chunk_id,
        token,
        queued_at=float(queued_at) if isinstance(queued_at, int | float) else None,
    )


@celery_app.task(name=INGEST_TASK, ignore_result=True)
def ingest(job_id: str, token: str) -> str:
    """Check a job's file and write its chunks, under the job's ingest lease."""
    return run_ingest(get_context(), job_id, token)


@celery_app.task(name=FINALIZE_TASK, ignore_result=True)
def finalize(job_id: str, token: str) -> str:
    """Write a finished batch's output and error files, under its finalize lease."""
    return run_finalize(get_context(), job_id, token)
