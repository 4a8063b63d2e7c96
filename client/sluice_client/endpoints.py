"""The API's routes as `Call`s, and how its lists page: built once here, sent by Client
and AsyncClient alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sluice_client import submission
from sluice_client.calls import Call
from sluice_client.config import ClientConfig
from sluice_client.multipart import content_type, new_boundary

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_JOBS_PAGE = 100
MAX_FILES_PAGE = 10_000


def inline_job(options: Mapping[str, Any], lines: list[bytes]) -> Call:
    """POST /v1/jobs with the inputs in the body."""
    body = submission.inline_body(options, lines)
    return Call("POST", "/v1/jobs", content=body, headers=JSON_HEADERS)


def file_job(options: Mapping[str, Any], file_id: str, on_invalid: str) -> Call:
    """POST /v1/jobs of an uploaded file."""
    return Call("POST", "/v1/jobs", json=submission.file_job_body(options, file_id, on_invalid))


def get_job(config: ClientConfig, job_id: str, wait: float) -> Call:
    """GET /v1/jobs/{id}, long-polling up to `wait` seconds."""
    if wait <= 0:
        return Call("GET", f"/v1/jobs/{job_id}")
    return Call(
        "GET",
        f"/v1/jobs/{job_id}",
        params={"wait": wait},
        timeout=config.long_poll_timeout(wait),
    )


def cancel_job(job_id: str) -> Call:
    """POST /v1/jobs/{id}/cancel (asking twice is harmless)."""
    return Call("POST", f"/v1/jobs/{job_id}/cancel", idempotent=True)


def retry_job(job_id: str) -> Call:
    """POST /v1/jobs/{id}/retry."""
    return Call("POST", f"/v1/jobs/{job_id}/retry")


def job_results(job_id: str, fmt: str, only_failed: bool) -> Call:
    """GET /v1/jobs/{id}/results in a format."""
    params = {"format": fmt, **({"only": "failed"} if only_failed else {})}
    return Call("GET", f"/v1/jobs/{job_id}/results", params=params)


def upload(
    config: ClientConfig,
    make_blocks: Callable[[], Any],
    *,
    replayable: bool,
    fields: dict[str, str],
    filename: str,
    multipart: Callable[..., Any],
) -> Call:
    """POST /v1/files with a streamed multipart body of the blocks `make_blocks()` gives."""
    boundary = new_boundary()
    return Call(
        "POST",
        "/v1/files",
        body=lambda: multipart(make_blocks(), boundary=boundary, filename=filename, fields=fields),
        replayable=replayable,
        headers={"Content-Type": content_type(boundary)},
        timeout=config.upload_timeout(),
    )


def file_call(method: str, file_id: str, suffix: str = "") -> Call:
    """GET or DELETE /v1/files/{id}, or GET its /content."""
    return Call(method, f"/v1/files/{file_id}{suffix}")


def list_models() -> Call:
    """GET /v1/models."""
    return Call("GET", "/v1/models")


class Pages:
    """The calls of a paged list, one page after another, and the items up to a limit."""

    def __init__(
        self, path: str, params: dict[str, Any], cursor_field: str, limit: int | None
    ) -> None:
        self.path, self.params = path, params
        self.cursor_field, self.limit = cursor_field, limit
        self.seen = 0
        self.finished = limit is not None and limit <= 0

    def next_call(self) -> Call | None:
        """The next page's call, or None when every page (or the limit) is read."""
        return None if self.finished else Call("GET", self.path, params=dict(self.params))

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
