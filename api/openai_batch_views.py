"""Rendering a batch job as OpenAI's batch object."""

from __future__ import annotations

from typing import Any

from api.openai_batch_schemas import BatchError, BatchErrors, BatchOut, BatchUsage, RequestCounts
from core import states
from core.request_counts import reported_counts
from core.tables import Job


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def batch_status(job: Job) -> Any:
    """The OpenAI status of a batch job: queued counts as in_progress, a batch stopping at
    its deadline shows finalizing, and a cancelled one shows cancelling until its files are
    written."""
    status = job.status
    if status in (states.QUEUED, states.IN_PROGRESS):
        return "in_progress"
    if status in (states.CANCELLING, states.FINALIZING):
        if job.finish_as == states.EXPIRED:
            return "finalizing"
        if status == states.CANCELLING or job.finish_as == states.CANCELLED:
            return "cancelling"
    return status


def _counts(job: Job) -> RequestCounts:
    """The batch's request counts as its webhook events report them (core.request_counts);
    none while its file is being checked, as OpenAI shows a validating batch."""
    if job.status == states.VALIDATING:
        return RequestCounts(total=0, completed=0, failed=0)
    counts = reported_counts(
        status=job.status,
        total=job.total,
        completed=job.completed,
        failed=job.failed,
        has_error_file=job.error_file_id is not None,
    )
    return RequestCounts(**counts)


def _errors(job: Job) -> BatchErrors | None:
    found = (job.errors or {}).get("data") or []
    if not found:
        return None
    return BatchErrors(
        data=[
            BatchError(code=e.get("code"), line=e.get("line"), message=e.get("message"))
            for e in found
        ]
    )


def batch_out(job: Job) -> BatchOut:
    """A batch job with its status, counts, timestamps and files, as OpenAI shows a batch."""
    ended = _ts(job.finished_at)
    status = batch_status(job)
    return BatchOut(
        id=job.id,
        endpoint=job.endpoint or "",
        model=job.model,
        errors=_errors(job),
        input_file_id=job.input_file_id or "",
        completion_window=job.completion_window or "24h",
        status=status,
        output_file_id=job.output_file_id,
        error_file_id=job.error_file_id,
        created_at=int(job.created_at),
        in_progress_at=_ts(job.started_at),
        expires_at=_ts(job.deadline_at),
        finalizing_at=_ts(job.finalizing_at),
        completed_at=ended if job.status == states.COMPLETED else None,
        failed_at=ended if job.status == states.FAILED else None,
        expired_at=ended if job.status == states.EXPIRED else None,
        cancelling_at=_ts(job.cancelled_at),
        cancelled_at=ended if job.status == states.CANCELLED else None,
        request_counts=_counts(job),
        usage=BatchUsage(
            input_tokens=job.prompt_tokens or 0,
            output_tokens=job.completion_tokens or 0,
            total_tokens=(job.prompt_tokens or 0) + (job.completion_tokens or 0),
        ),
        metadata=job.meta or None,
    )
