"""Response bodies of the routes the dashboard reads: who a key is, a job's detail and its
errors by code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas import JobOut


class Principal(BaseModel):
    """The tenant and scopes of the key that made the request."""

    object: str = "principal"
    tenant_id: str
    tenant_name: str
    scopes: list[str]
    is_admin: bool = Field(description="Whether the key may read every tenant's jobs")


class ChunkStateOut(BaseModel):
    """A job's chunks in one status."""

    status: str = Field(description="pending, queued, running, done, failed or cancelled")
    chunks: int
    items: int
    compute_seconds: float


class ThroughputPoint(BaseModel):
    """Items finished in one bucket of time."""

    t: float = Field(description="The bucket's start (Unix seconds)")
    items: int = Field(description="Items whose chunk finished in this bucket")
    items_per_second: float = Field(
        description="Items processed per second in this bucket (each chunk's items spread "
        "over the time it ran; chunks that ran side by side add up)"
    )


class ThroughputOut(BaseModel):
    """Items finished over time, from the job's finished chunks."""

    bucket_seconds: float
    points: list[ThroughputPoint]


class UsageOut(BaseModel):
    """What the job has used so far."""

    items_total: int
    items_completed: int
    items_failed: int
    prompt_tokens: int
    completion_tokens: int
    compute_seconds: float = Field(description="Model compute time summed over its chunks")


class JobDetail(BaseModel):
    """A job with its chunk states, throughput over time, usage and download paths."""

    object: str = "job.detail"
    job: JobOut
    chunk_states: list[ChunkStateOut]
    throughput: ThroughputOut
    usage: UsageOut
    downloads: dict[str, str] = Field(
        description="Result format -> path (fetch it with the same Authorization header)"
    )


class ErrorGroupOut(BaseModel):
    """The items that failed with one error code, and a few of them."""

    code: str
    count: int
    examples: list[dict[str, Any]] = Field(
        description="Up to `examples` items: index and custom_id (or the file's line), message"
    )


class ValidationOut(BaseModel):
    """What validating the job's input file found."""

    invalid_lines: int
    duplicates: int
    groups: list[ErrorGroupOut] = Field(description="From the first hundred findings")


class JobErrors(BaseModel):
    """A job's failed items grouped by error code, most frequent first."""

    object: str = "job.errors"
    job_id: str
    failed: int = Field(description="The job's failed items, all of them")
    groups: list[ErrorGroupOut]
    chunks_scanned: int
    complete: bool = Field(description="False when a bound stopped the scan early")
    validation: ValidationOut | None = None
