"""Request and response bodies of the native /v1/jobs API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InputItem(BaseModel):
    """One input of a job."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str | None = Field(
        default=None, description="Your id for the item, unique in the job"
    )
    input: Any = Field(
        description="The item: for `embed`, a string; for `classify`, a string or "
        '{"text", "text_pair"}; for `generate`, a prompt string, {"prompt"} or '
        '{"messages": [{"role", "content"}]}, optionally with "seed"'
    )


class JobCreate(BaseModel):
    """A job submitted with its inputs inline."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A model name from GET /v1/models")
    inputs: list[InputItem] = Field(description="The items, in order")
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters")
    priority: int = Field(default=0, ge=0, le=9, description="0 to 9; higher runs first")
    metadata: dict[str, str] = Field(default_factory=dict, description="Your labels")


class Counts(BaseModel):
    """How many items the job has, and how many have finished each way."""

    total: int
    completed: int
    failed: int


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    object: str = "job"
    model: str
    task: str
    status: str
    params: dict[str, Any]
    priority: int
    metadata: dict[str, Any]
    counts: Counts
    progress: float = Field(description="Finished items over total, 0 to 1")
    throughput: float | None = Field(description="Items per second since the job started")
    eta_seconds: float | None = Field(description="Estimated seconds until the job finishes")
    created_at: int
    started_at: int | None
    finished_at: int | None
    cancelled_at: int | None
    expires_at: int


class JobList(BaseModel):
    """A page of jobs, newest first."""

    object: str = "list"
    data: list[JobOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


class ModelOut(BaseModel):
    """A registered model."""

    id: str
    object: str = "model"
    task: str
    dimensions: int | None = Field(description="Output width (embed models)")
    labels: list[str] | None = Field(description="Labels in id order (classify models)")
    max_length: int
    dtype: str
    chunk_size: int
    live_workers: int | None


class ModelList(BaseModel):
    """Every registered model."""

    object: str = "list"
    data: list[ModelOut]
