"""Celery task registration: thin wrappers around the task bodies."""

from __future__ import annotations

from core.celery_app import celery_app
from core.constants import RUN_CHUNK_TASK
from worker.context import get_context
from worker.run_chunk import execute_chunk


@celery_app.task(name=RUN_CHUNK_TASK, ignore_result=True)
def run_chunk(chunk_id: int, token: str) -> str:
    """Run one chunk under its lease token."""
    return execute_chunk(get_context(), chunk_id, token)
