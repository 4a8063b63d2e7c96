"""The CLI's client: sluice_client's Client (which does every HTTP call, retries and error
typing), configured from SLUICE_API_URL and SLUICE_API_KEY, with the plain-dict calls that
the commands, the demo and the benchmarks use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from sluice_client import Client as SluiceClient
from sluice_client import Job, SluiceError

# What a command catches to print one line instead of a traceback: every error the client
# raises, the server's (with its status and code) and a connection's alike.
ApiError = SluiceError


class MissingKey(ValueError):
    """SLUICE_API_KEY is not set (and no key was given)."""


class Client:
    """Talks to one sluice API with one key; jobs and files as the API's JSON objects."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.api = SluiceClient(base_url, api_key, timeout=timeout, http_client=http_client)
        self.base_url = self.api.config.base_url
        # Without a key every call is a 401; say so before any (a caller's own http_client
        # may carry its own Authorization header).
        if not self.api.config.api_key and http_client is None:
            raise MissingKey("SLUICE_API_KEY is not set")

    def submit(
        self,
        *,
        model: str,
        inputs: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
        priority: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> dict:
        """POST /v1/jobs with the inputs inline, however many (the server's limits apply)."""
        job = self.api.submit(
            model, inputs, params=params, priority=priority, metadata=metadata, upload=False
        )
        return job.data

    def upload_lines(self, lines: Iterable[bytes], *, filename: str) -> dict:
        """POST /v1/files of JSONL lines, streamed as they are read."""
        return self.api.upload_file(lines, filename=filename).data

    def submit_file(
        self,
        *,
        model: str,
        input_file_id: str,
        params: dict[str, Any] | None = None,
        priority: int = 0,
        on_invalid: str = "fail",
        metadata: dict[str, str] | None = None,
    ) -> dict:
        """POST /v1/jobs for an uploaded file (the job starts in `validating`)."""
        job = self.api.submit_file(
            model,
            input_file_id,
            params=params,
            priority=priority,
            metadata=metadata,
            on_invalid=on_invalid,
        )
        return job.data

    def job(self, job_id: str, wait: float = 0) -> dict:
        """GET /v1/jobs/{id}, long-polling up to `wait` seconds."""
        return self.api.get_job(job_id, wait=wait).data

    def job_handle(self, job_id: str) -> Job:
        """The job as sluice_client's Job (to wait on, with its progress bar)."""
        return self.api.get_job(job_id)

    def jobs(
        self, *, limit: int, status: str | None = None, model: str | None = None
    ) -> list[dict]:
        """GET /v1/jobs: the newest `limit` jobs, of a status or model if given."""
        found = self.api.list_jobs(limit=limit, page_size=limit, status=status, model=model)
        return [job.data for job in found]

    def files(self, *, limit: int) -> list[dict]:
        """GET /v1/files: the newest `limit` files."""
        return [file.data for file in self.api.list_files(limit=limit, page_size=limit)]

    def delete_file(self, file_id: str) -> None:
        """DELETE /v1/files/{id}."""
        self.api.delete_file(file_id)

    def batches(self, *, limit: int) -> list[dict]:
        """GET /v1/batches: the newest `limit` OpenAI-compatible batches."""
        return list(self.api.list_batches(limit=limit, page_size=limit))

    def cancel(self, job_id: str) -> dict:
        """POST /v1/jobs/{id}/cancel."""
        return self.api.cancel_job(job_id).data

    def retry(self, job_id: str, include: list[str] | None = None) -> dict:
        """POST /v1/jobs/{id}/retry: a new job of the failed (or `include`d) items."""
        return self.api.retry_job(job_id, include=include).data

    def usage(
        self,
        *,
        start: str | None,
        end: str | None,
        group_by: str,
        tenant: str | None,
        limit: int,
    ) -> tuple[list[dict], dict]:
        """GET /v1/usage page after page: up to `limit` groups, and the range's totals."""
        rows: list[dict] = []
        after = None
        while True:
            page = self.api.usage_page(
                start=start,
                end=end,
                group_by=group_by,
                tenant=tenant,
                limit=min(1000, limit - len(rows)),
                after=after,
            )
            rows += page["data"]
            after = page["next_cursor"]
            if after is None or len(rows) >= limit:
                return rows, page["totals"]

    def models(self) -> dict:
        """GET /v1/models."""
        return {"object": "list", "data": self.api.list_models()}

    def results(self, job_id: str, *, only_failed: bool = False) -> Iterator[bytes]:
        """The result lines of a job in input order (only the failed ones with only_failed)."""
        return self.api.result_lines(job_id, only_failed=only_failed)

    def download(
        self, job_id: str, *, fmt: str = "jsonl", only_failed: bool = False
    ) -> Iterator[bytes]:
        """A job's results as raw bytes in a format: jsonl, csv or parquet."""
        return self.api.download_results(job_id, format=fmt, only_failed=only_failed)
