"""Anthropic Message Batches: request and response bodies (the shapes the official
`anthropic` client's types expect), and a batch rendered from its jobs: its processing
status and request counts are theirs, live while it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core import states
from core.tables import Job, MessageBatch


class MessageBatchCreate(BaseModel):
    """Create a message batch of inline Messages requests (checked one by one, so that an
    error names its request's index)."""

    model_config = ConfigDict(extra="forbid")

    requests: list[Any] = Field(
        description="[{custom_id, params: {model, max_tokens, messages, system, temperature, "
        "top_p, stop_sequences}}]; up to 100,000 requests, one or several models"
    )


class RequestCounts(BaseModel):
    """Requests per state; processing ones move to the others as they finish."""

    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int


class MessageBatchOut(BaseModel):
    """Anthropic's MessageBatch object."""

    id: str
    type: Literal["message_batch"] = "message_batch"
    processing_status: Literal["in_progress", "canceling", "ended"]
    request_counts: RequestCounts
    created_at: datetime
    ended_at: datetime | None
    expires_at: datetime
    cancel_initiated_at: datetime | None
    archived_at: datetime | None = None
    results_url: str | None


class MessageBatchList(BaseModel):
    """One page of message batches, newest first."""

    data: list[MessageBatchOut]
    has_more: bool
    first_id: str | None
    last_id: str | None


class DeletedMessageBatch(BaseModel):
    """What DELETE /v1/messages/batches/{id} answers."""

    id: str
    type: Literal["message_batch_deleted"] = "message_batch_deleted"


class AnthropicErrorDetail(BaseModel):
    """Anthropic's error object (with sluice's machine-readable code and param)."""

    type: str
    message: str
    code: str | None = None
    param: str | None = None
    details: Any = None


class AnthropicErrorOut(BaseModel):
    """Every error of these routes: {"type": "error", "error": {type, message}}."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": AnthropicErrorOut, "description": description}


# The errors these routes may answer (declared so clients and the spec agree).
ANTHROPIC_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request or one of its requests is invalid (invalid_request_error)"),
    401: _error("No valid API key (authentication_error)"),
    403: _error("The key lacks the scope this needs (permission_error)"),
    404: _error("Not found, or another tenant's (not_found_error)"),
    413: _error("Too large (request_too_large)"),
    429: _error("Rate limited; see Retry-After (rate_limit_error)"),
    503: _error("A backing service is unavailable; see Retry-After (overloaded_error)"),
}


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def has_ended(jobs: list[Job]) -> bool:
    """Whether every request of the batch has succeeded, errored, been canceled or expired."""
    return all(j.status in states.JOB_TERMINAL for j in jobs)


def _counts(jobs: list[Job]) -> RequestCounts:
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    for job in jobs:
        counts["succeeded"] += job.completed
        counts["errored"] += job.failed
        rest = job.total - job.completed - job.failed
        if job.status not in states.JOB_TERMINAL:
            counts["processing"] += rest
        elif job.finish_as == states.EXPIRED:
            counts["expired"] += rest
        else:
            counts["canceled"] += rest
    return RequestCounts(**counts)


def message_batch_out(batch: MessageBatch, jobs: list[Job], base_url: str) -> MessageBatchOut:
    """The batch as Anthropic shows one, with its results' URL once it has ended."""
    ended = has_ended(jobs)
    if ended:
        status: Literal["in_progress", "canceling", "ended"] = "ended"
    else:
        status = "canceling" if batch.cancel_initiated_at is not None else "in_progress"
    ended_at = max((j.finished_at or j.updated_at for j in jobs), default=batch.created_at)
    return MessageBatchOut(
        id=batch.id,
        processing_status=status,
        request_counts=_counts(jobs),
        created_at=datetime.fromtimestamp(batch.created_at, tz=UTC),
        ended_at=_at(ended_at) if ended else None,
        expires_at=datetime.fromtimestamp(batch.expires_at, tz=UTC),
        cancel_initiated_at=_at(batch.cancel_initiated_at),
        results_url=f"{base_url.rstrip('/')}/v1/messages/batches/{batch.id}/results"
        if ended
        else None,
    )
