"""`Client`: the synchronous client of one sluice API with one key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import httpx

from sluice_client import endpoints, submission
from sluice_client.calls import (
    Call,
    connection_error,
    delay_after_error,
    delay_after_transport_error,
)
from sluice_client.config import INLINE_MAX_BYTES, INLINE_MAX_ITEMS, ClientConfig
from sluice_client.errors import error_from_response
from sluice_client.inputs import InputSource, in_blocks, input_path, item_lines, path_blocks
from sluice_client.jobs import Job
from sluice_client.lines import split_lines
from sluice_client.multipart import multipart_blocks
from sluice_client.resources import File


class Client:
    """A sluice API and a key: submit jobs, follow them, fetch results, manage files.

    `base_url` and `api_key` default to SLUICE_API_URL and SLUICE_API_KEY. Answers 429 and
    503 are retried up to `max_retries` times after the server's Retry-After (a longer
    wait than `max_retry_wait` raises at once), and so are broken connections where sending
    twice is harmless. Errors raise SluiceError subclasses carrying the server's code."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = 60.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        inline_max_items: int = INLINE_MAX_ITEMS,
        inline_max_bytes: int = INLINE_MAX_BYTES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            inline_max_items=inline_max_items,
            inline_max_bytes=inline_max_bytes,
        )
        self._headers = self.config.headers()
        # A caller's own httpx client (proxies, transports, a test client) is used as it
        # is: requests are made to full URLs with the key's header added to each.
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    # --- transport -------------------------------------------------------------------

    def _request(self, call: Call) -> httpx.Request:
        return call.build(self._http, self.config.base_url, self._headers)

    def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """The answer to a call, retried as the policy allows; an error answer raises."""
        retry = 0
        while True:
            retry += 1
            try:
                response = self._http.send(self._request(call), stream=stream)
            except httpx.TransportError as exc:
                delay = delay_after_transport_error(call, exc, retry, self.config.retry)
                if delay is None:
                    raise connection_error(exc, self.config.base_url) from exc
                time.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            try:
                body = response.read()
            finally:
                response.close()
            error = error_from_response(response.status_code, body, response.headers)
            delay = delay_after_error(call, error, retry, self.config.retry)
            if delay is None:
                raise error
            time.sleep(delay)

    def _json(self, call: Call) -> Any:
        return self._send(call).json()

    def _blocks(self, call: Call) -> Iterator[bytes]:
        """A streamed answer's body in blocks (a connection lost midway raises
        APIConnectionError: a stream cannot resume where it broke)."""
        response = self._send(call, stream=True)
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise connection_error(exc, self.config.base_url) from exc
        finally:
            response.close()

    # --- jobs ------------------------------------------------------------------------

    def submit(
        self,
        model: str,
        inputs: InputSource,
        *,
        params: Mapping[str, Any] | None = None,
        priority: int = 0,
        metadata: Mapping[str, str] | None = None,
        expires_after: int | None = None,
        on_invalid: str = "fail",
        upload: bool | None = None,
    ) -> Job:
        """Submit a job and return it.

        `inputs`: an iterable of inputs (str, bytes, or a task's input object) or items
        `{"custom_id"?, "input"}`; a pandas DataFrame or pyarrow Table (an `input` column
        and optionally `custom_id`, or a single column); or the path of a JSONL file (sent
        as it is) or a text file (an input per non-blank line). Inputs past the inline
        limits, and every path, go up as a streamed file upload (`upload=True` forces it,
        `upload=False` forbids it); a file job checks its lines on a worker (status
        `validating`), and `on_invalid="skip"` fails invalid lines alone, not the job."""
        options = submission.job_options(
            model=model,
            params=params,
            priority=priority,
            metadata=metadata,
            expires_after=expires_after,
        )
        submission.check_on_invalid(on_invalid)
        path = input_path(inputs)
        if path is not None:
            if upload is False:
                raise ValueError("a path is always uploaded as a file; pass its inputs instead")
            return self._file_job(options, self.upload_file(path).id, on_invalid)
        lines = item_lines(inputs)  # type: ignore[arg-type]
        if upload:
            return self._file_job(options, self._upload_lines(lines).id, on_invalid)
        max_items, max_bytes = self.config.inline_limits(upload)
        taken, overflow = submission.take_inline(lines, max_items=max_items, max_bytes=max_bytes)
        if overflow is None:
            return Job(self, self._json(endpoints.inline_job(options, taken)))
        uploaded = self._upload_lines(chain(taken, [overflow], lines))
        return self._file_job(options, uploaded.id, on_invalid)

    def submit_file(
        self,
        model: str,
        file_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        priority: int = 0,
        metadata: Mapping[str, str] | None = None,
        expires_after: int | None = None,
        on_invalid: str = "fail",
    ) -> Job:
        """A job of a file uploaded before (upload_file); a worker checks its lines first."""
        options = submission.job_options(
            model=model,
            params=params,
            priority=priority,
            metadata=metadata,
            expires_after=expires_after,
        )
        return self._file_job(options, file_id, on_invalid)

    def _file_job(self, options: dict[str, Any], file_id: str, on_invalid: str) -> Job:
        return Job(self, self._json(endpoints.file_job(options, file_id, on_invalid)))

    def get_job(self, job_id: str, *, wait: float = 0) -> Job:
        """A job; with `wait`, the server holds the answer up to that many seconds until
        its status or counts change (a long-poll)."""
        return Job(self, self._json(endpoints.get_job(self.config, job_id, wait)))

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        page_size: int = 100,
        tenant: str | None = None,
        status: str | None = None,
        model: str | None = None,
    ) -> Iterator[Job]:
        """Your jobs, newest first, page after page (up to `limit`), of one `status` or
        `model` when given; an admin key may name a `tenant` (else it sees every tenant's)."""
        pages = endpoints.job_pages(limit, page_size, tenant, status, model)
        while (call := pages.next_call()) is not None:
            for data in pages.take(self._json(call)):
                yield Job(self, data)

    def list_batches(
        self, *, limit: int | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Your OpenAI-compatible batches (as OpenAI's batch objects), newest first."""
        pages = endpoints.batch_pages(limit, page_size)
        while (call := pages.next_call()) is not None:
            yield from pages.take(self._json(call))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a job: unstarted work at once, running work within a micro-batch."""
        return Job(self, self._json(endpoints.cancel_job(job_id)))

    def retry_job(self, job_id: str) -> Job:
        """A new job of a finished job's failed items (ConflictError when none failed)."""
        return Job(self, self._json(endpoints.retry_job(job_id)))

    def download_results(
        self, job_id: str, *, format: str = "jsonl", only_failed: bool = False
    ) -> Iterator[bytes]:
        """A job's results in a format (jsonl, csv or parquet), as streamed blocks."""
        return self._blocks(endpoints.job_results(job_id, format, only_failed))

    def result_lines(self, job_id: str, *, only_failed: bool = False) -> Iterator[bytes]:
        """A job's result lines as the API sends them (JSON bytes), in input order."""
        return split_lines(self.download_results(job_id, only_failed=only_failed))

    def results(self, job_id: str, *, only_failed: bool = False) -> Iterator[dict[str, Any]]:
        """A job's result lines, parsed, in input order, streamed."""
        for line in self.result_lines(job_id, only_failed=only_failed):
            yield json.loads(line)

    # --- files -----------------------------------------------------------------------

    def upload_file(
        self,
        source: str | Path | Iterable[bytes],
        *,
        purpose: str = "jobs",
        filename: str | None = None,
        expires_after: int | None = None,
    ) -> File:
        """Upload a JSONL file, streamed: a path (a text file is sent as an input a line),
        or an iterable of JSONL bytes (lines that end in a newline, or blocks of them). The
        server checks every line; a bad one raises InvalidRequestError with its `line`."""
        fields = submission.upload_fields(purpose, expires_after)
        path = input_path(source)
        if path is None:
            return self._upload_lines(source, fields=fields, filename=filename)  # type: ignore[arg-type]
        call = endpoints.upload(
            self.config,
            lambda: path_blocks(path),
            replayable=True,  # the file is read again for a second attempt
            fields=fields,
            filename=filename or path.name,
            multipart=multipart_blocks,
        )
        return File.from_api(self._json(call))

    def _upload_lines(
        self,
        lines: Iterable[bytes],
        *,
        fields: dict[str, str] | None = None,
        filename: str | None = None,
    ) -> File:
        blocks = in_blocks(lines)
        call = endpoints.upload(
            self.config,
            lambda: blocks,
            replayable=False,  # an iterator is read once: never sent twice
            fields=fields or submission.upload_fields("jobs", None),
            filename=filename or "inputs.jsonl",
            multipart=multipart_blocks,
        )
        return File.from_api(self._json(call))

    def list_files(
        self, *, purpose: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> Iterator[File]:
        """Your files, newest first, page after page (up to `limit`)."""
        pages = endpoints.file_pages(limit, page_size, purpose)
        while (call := pages.next_call()) is not None:
            for data in pages.take(self._json(call)):
                yield File.from_api(data)

    def get_file(self, file_id: str) -> File:
        """A file's metadata."""
        return File.from_api(self._json(endpoints.file_call("GET", file_id)))

    def delete_file(self, file_id: str) -> None:
        """Delete a file (ConflictError while a job validates it)."""
        self._send(endpoints.file_call("DELETE", file_id)).close()

    def file_content(self, file_id: str) -> Iterator[bytes]:
        """A file's bytes as uploaded, streamed in blocks."""
        return self._blocks(endpoints.file_call("GET", file_id, "/content"))

    def list_models(self) -> list[dict[str, Any]]:
        """Each model's task, output size, limits and live workers."""
        return list(self._json(endpoints.list_models())["data"])

    def close(self) -> None:
        """Close the connections (not those of an http_client given to the constructor)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
