"""Request and response bodies of the OpenAI-compatible /v1/batches API (the shapes the
official client's types expect)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import WebhookIn

WINDOW_PATTERN = r"^[1-9][0-9]{0,5}[smhd]$"


class BatchCreate(BaseModel):
    """Create a batch from an uploaded file of OpenAI batch request lines."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(max_length=64, description="A file uploaded with purpose batch")
    endpoint: str = Field(
        max_length=64,
        description="/v1/embeddings, /v1/chat/completions or /v1/completions (other OpenAI "
        "endpoints are refused with unsupported_endpoint); every line's url must be this one",
    )
    completion_window: str = Field(
        pattern=WINDOW_PATTERN,
        description='"24h" (OpenAI\'s only value); sluice also takes other windows from 1m '
        'to 7d, such as "1h" or "30m". Requests not finished by then are reported as '
        "batch_expired in the error file",
    )
    metadata: dict[str, str] | None = Field(
        default=None, description="Up to 16 pairs; keys up to 64, values up to 512 characters"
    )
    on_invalid: Literal["fail", "skip"] = Field(
        default="fail",
        description="sluice extension: `fail` the batch on any invalid line (OpenAI's "
        "behaviour), or `skip` invalid lines into the error file",
    )
    webhook: WebhookIn | None = Field(
        default=None,
        description="sluice extension: POSTed a signed batch.completed, batch.failed, "
        "batch.cancelled or batch.expired event when the batch ends (default: the tenant's "
        "webhook, if one is set)",
    )


class BatchError(BaseModel):
    """One validation finding."""

    code: str | None
    line: int | None
    message: str | None
    param: str | None = None


class BatchErrors(BaseModel):
    """Validation findings of a failed batch."""

    object: str = "list"
    data: list[BatchError]


class RequestCounts(BaseModel):
    """Requests in the batch, and how many finished each way."""

    total: int
    completed: int
    failed: int


class TokenDetails(BaseModel):
    """Breakdowns OpenAI reports (always 0 here)."""

    cached_tokens: int = 0


class OutputTokenDetails(BaseModel):
    """Breakdowns OpenAI reports (always 0 here)."""

    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    """Tokens used by the batch's finished requests."""

    input_tokens: int
    input_tokens_details: TokenDetails = Field(default_factory=TokenDetails)
    output_tokens: int
    output_tokens_details: OutputTokenDetails = Field(default_factory=OutputTokenDetails)
    total_tokens: int


class BatchOut(BaseModel):
    """A batch as OpenAI shows it."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: Literal[
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    ]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None


class BatchList(BaseModel):
    """A page of batches, newest first; pass last_id as `after` for the next."""

    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None
    last_id: str | None
    has_more: bool
