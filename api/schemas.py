"""Request and response bodies of the native /v1/jobs API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class InputItem(BaseModel):
    """One input of a job."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str | None = Field(
        default=None, description="Your id for the item, unique in the job"
    )
    input: Any = Field(
        description="The item: for `embed`, a string; for `classify`, a string or "
        '{"text", "text_pair"}; for `generate`, a prompt string, {"prompt"} or '
        '{"messages": [{"role", "content"}]}, optionally with "seed"; for '
        '`classify_image`, an image as a data URL, bare base64, or {"image": <either>}'
    )


class WebhookIn(BaseModel):
    """Where to announce the job's end (Standard Webhooks), and the secret that signs it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="An http(s) URL of a public host, up to 2048 characters")
    secret: str = Field(
        description="`whsec_` + base64 of 24 to 64 random bytes; each POST is signed with it"
    )


class WebhookOut(BaseModel):
    """A job's webhook as shown: its URL, never its secret."""

    url: str
    has_secret: bool


class JobCreate(BaseModel):
    """A job submitted with its inputs inline."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A model name from GET /v1/models")
    inputs: list[InputItem] | None = Field(
        default=None, description="The items, in order (or give input_file_id)"
    )
    input_file_id: str | None = Field(
        default=None,
        max_length=64,
        description="An uploaded JSONL file of {custom_id?, input} lines, instead of inputs; "
        "the job is `validating` while a worker checks every line",
    )
    on_invalid: Literal["fail", "skip"] = Field(
        default="fail",
        description="For input_file_id: `fail` the job on any invalid line (up to 100 "
        "errors are listed with their line numbers), or `skip` them as failed items",
    )
    expires_after: int | None = Field(
        default=None,
        ge=3600,
        le=365 * 86400,
        description="Seconds after creation when the job and its results are deleted "
        "(default: the server's retention, 30 days)",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters")
    priority: int = Field(default=0, ge=0, le=9, description="0 to 9; higher runs first")
    metadata: dict[str, str] = Field(default_factory=dict, description="Your labels")
    webhook: WebhookIn | None = Field(
        default=None,
        description="POSTed a signed job.completed, job.failed, job.cancelled or job.expired "
        "event when the job ends (default: the tenant's webhook, if one is set)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobCreate:
        if (self.inputs is None) == (self.input_file_id is None):
            raise ValueError("give exactly one of inputs and input_file_id")
        return self


RetryKind = Literal["failed", "cancelled"]


def _failed_only() -> list[RetryKind]:
    return ["failed"]


class RetryRequest(BaseModel):
    """What a retry runs again."""

    model_config = ConfigDict(extra="forbid")

    include: list[RetryKind] = Field(
        default_factory=_failed_only,
        min_length=1,
        description="`failed`: the items that failed (not lines that failed validation); "
        "`cancelled`: the items a cancel kept from running (a cancelled job's `counts."
        "cancelled`; all of a file job cancelled while validating, whose file is read again)",
    )


class Counts(BaseModel):
    """How many items the job has, and how many have finished each way."""

    total: int
    completed: int
    failed: int
    cancelled: int = Field(
        default=0,
        description="Items that never ran because the job was cancelled (known once it has "
        'ended; `POST /v1/jobs/{id}/retry` with include ["cancelled"] runs them)',
    )


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    object: str = "job"
    tenant_id: str = Field(description="The tenant that owns the job")
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
    waiting_for_worker: bool = Field(
        default=False,
        description="The job is unfinished, has waited SLUICE_WAITING_FOR_WORKER_SECONDS, and no "
        "worker of its model is live (start one: `sluice worker --models MODEL`)",
    )
    created_at: int
    started_at: int | None
    finished_at: int | None
    cancelled_at: int | None
    expires_at: int
    input_file_id: str | None = None
    retry_of: str | None = Field(default=None, description="The job this one retries")
    errors: dict[str, Any] | None = Field(
        default=None,
        description="Validation findings of a job from a file: {data: [{line, code, "
        "message}], invalid_lines}",
    )
    usage: dict[str, int] = Field(
        default_factory=dict,
        description="Tokens of the finished items: {prompt_tokens, completion_tokens}",
    )
    endpoint: str | None = Field(
        default=None, description="For an OpenAI batch: the endpoint of its requests"
    )
    output_file_id: str | None = Field(default=None, description="A finished batch's output file")
    error_file_id: str | None = Field(default=None, description="A finished batch's error file")
    webhook: WebhookOut | None = Field(
        default=None, description="The job's own webhook (its secret is never shown)"
    )


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
    labels: list[str] | None = Field(
        description="Labels in output order (classify and classify_image models)"
    )
    max_length: int
    dtype: str
    chunk_size: int
    live_workers: int | None


class ModelList(BaseModel):
    """Every registered model."""

    object: str = "list"
    data: list[ModelOut]


class FileOut(BaseModel):
    """An uploaded file (OpenAI's file object, plus its line count and digest)."""

    id: str
    object: str = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: str = "processed"
    status_details: str | None = None
    lines: int = Field(description="Non-blank lines, each one JSON object")
    sha256: str | None


class FileList(BaseModel):
    """A page of files, newest first."""

    object: str = "list"
    data: list[FileOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    """What DELETE /v1/files/{id} answers."""

    id: str
    object: str = "file"
    deleted: bool = True


class ErrorDetail(BaseModel):
    """What went wrong: a message, OpenAI's error type, the parameter and a code."""

    message: str
    type: str
    param: str | None = None
    code: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every error response: {"error": {message, type, param, code}}."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# The errors any authenticated route may answer (declared so clients and the spec agree).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request or an input is invalid (a machine-readable code says which)"),
    401: _error("No valid API key"),
    403: _error("The key lacks the scope this needs (code insufficient_scope)"),
    404: _error("Not found, or another tenant's"),
    409: _error("The resource's state does not allow it"),
    413: _error("Too large"),
    422: _error("The body or a parameter does not parse"),
    429: _error("Rate limited; see Retry-After"),
    503: _error("A backing service is unavailable; see Retry-After"),
}
