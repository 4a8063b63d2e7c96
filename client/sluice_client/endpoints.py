"""The API's routes as plans, and how its lists page: made once here, sent by Client and
AsyncClient alike."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sluice_client import submission
from sluice_client.config import ClientConfig
from sluice_client.inputs import input_path
from sluice_client.plans import Plan, Upload, file_of, models_of, nothing
from sluice_client.resources import File

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_JOBS_PAGE = 100
MAX_FILES_PAGE = 10_000
DEFAULT_UPLOAD_NAME = "inputs.jsonl"
# A job as the API describes it (Job and AsyncJob wrap it).
JobData = dict[str, Any]


def inline_job(options: Mapping[str, Any], lines: list[bytes]) -> Plan[JobData]:
    """POST /v1/jobs with the inputs in the body."""
    body = submission.inline_body(options, lines)
    return Plan("POST", "/v1/jobs", content=body, headers=JSON_HEADERS)


def file_job(options: Mapping[str, Any], file_id: str, on_invalid: str) -> Plan[JobData]:
    """POST /v1/jobs of an uploaded file."""
    return Plan("POST", "/v1/jobs", json=submission.file_job_body(options, file_id, on_invalid))


def get_job(config: ClientConfig, job_id: str, wait: float) -> Plan[JobData]:
    """GET /v1/jobs/{id}, long-polling up to `wait` seconds."""
    if wait <= 0:
        return Plan("GET", f"/v1/jobs/{job_id}")
    return Plan(
        "GET",
        f"/v1/jobs/{job_id}",
        params={"wait": wait},
        timeout=config.long_poll_timeout(wait),
    )


def cancel_job(job_id: str) -> Plan[JobData]:
    """POST /v1/jobs/{id}/cancel (asking twice is harmless)."""
    return Plan("POST", f"/v1/jobs/{job_id}/cancel", idempotent=True)


def retry_job(job_id: str, include: Sequence[str] | None = None) -> Plan[JobData]:
    """POST /v1/jobs/{id}/retry, of the kinds of items `include` names (the server's
    default, failed ones, without it)."""
    body = None if include is None else {"include": list(include)}
    return Plan("POST", f"/v1/jobs/{job_id}/retry", json=body)


def job_results(job_id: str, fmt: str, only_failed: bool) -> Plan[None]:
    """GET /v1/jobs/{id}/results in a format (its body is read as a stream)."""
    params = {"format": fmt, **({"only": "failed"} if only_failed else {})}
    return Plan("GET", f"/v1/jobs/{job_id}/results", nothing, params=params)


def upload_of(
    source: str | Path | Iterable[bytes] | AsyncIterable[bytes],
    *,
    purpose: str = "jobs",
    filename: str | None = None,
    expires_after: int | None = None,
    head: tuple[bytes, ...] = (),
) -> Upload:
    """What to upload: a path (a text file goes up as an input a line), or JSONL lines
    (each ending in a newline, or blocks of them) after `head`."""
    fields = submission.upload_fields(purpose, expires_after)
    path = input_path(source)
    if path is not None:
        return Upload(fields, filename or path.name, path=path)
    lines: Any = source
    return Upload(fields, filename or DEFAULT_UPLOAD_NAME, lines=lines, head=head)


def upload_file(config: ClientConfig, upload: Upload) -> Plan[File]:
    """POST /v1/files with a streamed multipart body (the answer comes after all of it)."""
    return Plan("POST", "/v1/files", file_of, upload=upload, timeout=config.upload_timeout())


def get_file(file_id: str) -> Plan[File]:
    """GET /v1/files/{id}."""
    return Plan("GET", f"/v1/files/{file_id}", file_of)


def delete_file(file_id: str) -> Plan[None]:
    """DELETE /v1/files/{id}."""
    return Plan("DELETE", f"/v1/files/{file_id}", nothing)


def file_content(file_id: str) -> Plan[None]:
    """GET /v1/files/{id}/content (its body is read as a stream)."""
    return Plan("GET", f"/v1/files/{file_id}/content", nothing)


def list_models() -> Plan[list[dict[str, Any]]]:
    """GET /v1/models: each model's task, output size, limits and live workers."""
    return Plan("GET", "/v1/models", models_of)


def usage_page(
    *,
    start: str | None,
    end: str | None,
    group_by: str,
    tenant: str | None,
    limit: int,
    after: str | None,
) -> Plan[dict[str, Any]]:
    """GET /v1/usage: one page of usage groups over UTC days start to end, and the range's
    totals."""
    params = {"start": start, "end": end, "tenant": tenant, "after": after}
    query = {k: v for k, v in params.items() if v is not None}
    return Plan("GET", "/v1/usage", params={**query, "group_by": group_by, "limit": limit})


class Pages:
    """The plans of a paged list, one page after another, and the items up to a limit."""

    def __init__(
        self, path: str, params: dict[str, Any], cursor_field: str, limit: int | None
    ) -> None:
        self.path, self.params = path, params
        self.cursor_field, self.limit = cursor_field, limit
        self.seen = 0
        self.finished = limit is not None and limit <= 0

    def next_call(self) -> Plan[dict[str, Any]] | None:
        """The next page's plan, or None when every page (or the limit) is read."""
        return None if self.finished else Plan("GET", self.path, params=dict(self.params))

    def take(self, page: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A page's items within the limit; moves the cursor on."""
        items = list(page.get("data", []))
        if self.limit is not None:
            items = items[: self.limit - self.seen]
        self.seen += len(items)
        cursor = page.get(self.cursor_field)
        if not page.get("has_more") or not cursor or self.seen == self.limit:
            self.finished = True
        self.params["after"] = cursor
        return items


def job_pages(
    limit: int | None,
    page_size: int,
    tenant: str | None,
    status: str | None = None,
    model: str | None = None,
) -> Pages:
    """GET /v1/jobs, newest first (`tenant`: an admin key's filter), of one status or
    model when given."""
    params: dict[str, Any] = {"limit": max(1, min(page_size, MAX_JOBS_PAGE))}
    filters = {"tenant": tenant, "status": status, "model": model}
    params.update({name: value for name, value in filters.items() if value is not None})
    return Pages("/v1/jobs", params, "next_cursor", limit)


def batch_pages(limit: int | None, page_size: int) -> Pages:
    """GET /v1/batches (OpenAI-compatible batches), newest first."""
    params: dict[str, Any] = {"limit": max(1, min(page_size, MAX_JOBS_PAGE))}
    return Pages("/v1/batches", params, "last_id", limit)


def file_pages(limit: int | None, page_size: int, purpose: str | None) -> Pages:
    """GET /v1/files, newest first."""
    params: dict[str, Any] = {"limit": max(1, min(page_size, MAX_FILES_PAGE))}
    if purpose is not None:
        params["purpose"] = purpose
    return Pages("/v1/files", params, "last_id", limit)
