"""A small HTTP client for the sluice API, used by the CLI and the demo."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx


class ApiError(RuntimeError):
    """The API answered with an error envelope."""

    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code")
        super().__init__(f"HTTP {status} {err.get('code', '')}: {err.get('message', body)}")


class Client:
    """Talks to one sluice API with one key."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 120.0
    ) -> None:
        self.base_url = (
            base_url or os.environ.get("SLUICE_API_URL") or "http://127.0.0.1:8000"
        ).rstrip("/")
        key = api_key or os.environ.get("SLUICE_API_KEY", "")
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
        )

    def _json(self, resp: httpx.Response) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, body)
        return body

    def submit(
        self,
        *,
        model: str,
        inputs: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
        priority: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> dict:
        """POST /v1/jobs with the inputs inline."""
        return self._create_job(model, {"inputs": inputs}, params, priority, metadata)

    def _create_job(
        self,
        model: str,
        source: dict[str, Any],
        params: dict[str, Any] | None,
        priority: int,
        metadata: dict[str, str] | None,
    ) -> dict:
        body = {
            "model": model,
            **source,
            "params": params or {},
            "priority": priority,
            "metadata": metadata or {},
        }
        return self._json(self.http.post("/v1/jobs", json=body))

    def upload(self, content_type: str, body: Iterator[bytes]) -> dict:
        """POST /v1/files with a streamed multipart body (see cli.upload)."""
        return self._json(
            self.http.post(
                "/v1/files", content=body, headers={"Content-Type": content_type}, timeout=None
            )
        )

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
        source = {"input_file_id": input_file_id, "on_invalid": on_invalid}
        return self._create_job(model, source, params, priority, metadata)

    def job(self, job_id: str, wait: float = 0) -> dict:
        """GET /v1/jobs/{id}, long-polling up to `wait` seconds."""
        return self._json(
            self.http.get(f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 30)
        )

    def cancel(self, job_id: str) -> dict:
        """POST /v1/jobs/{id}/cancel."""
        return self._json(self.http.post(f"/v1/jobs/{job_id}/cancel"))

    def models(self) -> dict:
        """GET /v1/models."""
        return self._json(self.http.get("/v1/models"))

    @contextmanager
    def _results_response(
        self, job_id: str, fmt: str, only_failed: bool
    ) -> Iterator[httpx.Response]:
        """The open streaming response of GET /v1/jobs/{id}/results (errors raised)."""
        params = {"format": fmt, **({"only": "failed"} if only_failed else {})}
        with self.http.stream("GET", f"/v1/jobs/{job_id}/results", params=params) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._json(resp)
            yield resp

    def results(
        self,
        job_id: str,
        on_bytes: Callable[[int], None] | None = None,
        *,
        only_failed: bool = False,
    ) -> Iterator[bytes]:
        """Stream the result lines of a job (only the failed ones with only_failed)."""
        with self._results_response(job_id, "jsonl", only_failed) as resp:
            for line in resp.iter_lines():
                if line:
                    if on_bytes:
                        on_bytes(len(line) + 1)
                    yield line.encode()

    def download(
        self, job_id: str, *, fmt: str = "jsonl", only_failed: bool = False
    ) -> Iterator[bytes]:
        """Stream a job's results as raw bytes in a format: jsonl, csv or parquet."""
        with self._results_response(job_id, fmt, only_failed) as resp:
            yield from resp.iter_bytes()

    def ready(self) -> bool:
        """Whether /readyz answers 200."""
        try:
            return self.http.get("/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False
