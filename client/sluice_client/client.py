"""`Client`: the synchronous client of one sluice API with one key. It sends the plans of
endpoints.py and flows.py over an httpx.Client; what to send, when to retry and how an
answer reads are decided there, once for both clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sluice_client import endpoints, flows, submission
from sluice_client.attempts import connection_error
from sluice_client.base_client import BaseClient
from sluice_client.inputs import InputSource, in_blocks, item_lines, path_blocks
from sluice_client.jobs import Job
from sluice_client.lines import split_lines
from sluice_client.multipart import multipart_blocks
from sluice_client.plans import Flow, Plan, ReadInline, Upload
from sluice_client.resources import File

T = TypeVar("T")


class Client(BaseClient[httpx.Client]):
    """A sluice API and a key: submit jobs, follow them, fetch results, manage files.

    `base_url` and `api_key` default to SLUICE_API_URL and SLUICE_API_KEY. Answers 429 and
    503 are retried up to `max_retries` times after the server's Retry-After (a longer
    wait than `max_retry_wait` raises at once), and so are broken connections where sending
    twice is harmless. Errors raise SluiceError subclasses carrying the server's code."""

    def _new_http(self, timeout: float | None) -> httpx.Client:
        return httpx.Client(timeout=timeout)

    # --- transport: plans and flows over httpx.Client ---------------------------------

    def _send(self, plan: Plan[Any], *, stream: bool = False) -> httpx.Response:
        """The answer to a plan, retried as the policy allows; an error answer raises."""
        attempts = self._attempts(plan)
        while True:
            body = self._upload_body(plan.upload) if plan.upload is not None else None
            request = attempts.request(self._http, body)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                time.sleep(attempts.wait_after_transport_error(exc))
                continue
            if response.status_code < 400:
                return response
            try:
                error_body = response.read()
            finally:
                response.close()
            time.sleep(
                attempts.wait_after_error(response.status_code, error_body, response.headers)
            )

    def _run(self, plan: Plan[T]) -> T:
        return plan.parse(self._send(plan))

    def _drive(self, flow: Flow[T]) -> T:
        """A flow's result, each of its steps answered in turn."""
        answer: Any = None
        try:
            while True:
                step = flow.send(answer)
                answer = self._read(step) if isinstance(step, ReadInline) else self._run(step)
        except StopIteration as end:
            return end.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    def _read(self, step: ReadInline) -> tuple[list[bytes], bytes | None, Iterator[bytes]]:
        """Inputs as JSONL lines, read while they fit inline; the rest left unread."""
        lines = item_lines(step.inputs)
        taken, overflow = submission.take_inline(
            lines, max_items=step.max_items, max_bytes=step.max_bytes
        )
        return taken, overflow, lines

    def _blocks(self, plan: Plan[Any]) -> Iterator[bytes]:
        """A streamed answer's body in blocks (a connection lost midway raises
        APIConnectionError: a stream cannot resume where it broke)."""
        response = self._send(plan, stream=True)
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise connection_error(exc, self.config.base_url) from exc
        finally:
            response.close()

    def _pages(self, pages: endpoints.Pages) -> Iterator[dict[str, Any]]:
        """A list's items, page after page."""
        while (plan := pages.next_call()) is not None:
            yield from pages.take(self._run(plan))

    def _upload_body(self, upload: Upload) -> Iterator[bytes]:
        """An upload's multipart body, streamed (a path is read again for each attempt)."""
        if upload.path is not None:
            blocks = path_blocks(upload.path)
        else:
            blocks = in_blocks(chain(upload.head, upload.lines))  # type: ignore[arg-type]
        return multipart_blocks(
            blocks, boundary=upload.boundary, filename=upload.filename, fields=upload.fields
        )

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
        flow = flows.submit(self.config, options, inputs, on_invalid=on_invalid, upload=upload)
        return Job(self, self._drive(flow))

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
        return Job(self, self._run(endpoints.file_job(options, file_id, on_invalid)))

    def get_job(self, job_id: str, *, wait: float = 0) -> Job:
        """A job; with `wait`, the server holds the answer up to that many seconds until
        its status or counts change (a long-poll)."""
        return Job(self, self._run(endpoints.get_job(self.config, job_id, wait)))

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
        for data in self._pages(endpoints.job_pages(limit, page_size, tenant, status, model)):
            yield Job(self, data)

    def list_batches(
        self, *, limit: int | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Your OpenAI-compatible batches (as OpenAI's batch objects), newest first."""
        yield from self._pages(endpoints.batch_pages(limit, page_size))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a job: unstarted work at once, running work within a micro-batch."""
        return Job(self, self._run(endpoints.cancel_job(job_id)))

    def retry_job(self, job_id: str, *, include: Sequence[str] | None = None) -> Job:
        """A new job of a finished job's failed items (ConflictError when none failed);
        `include=["failed", "cancelled"]` also runs the items a cancel kept from running,
        where the server supports it."""
        return Job(self, self._run(endpoints.retry_job(job_id, include)))

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
        upload = endpoints.upload_of(
            source, purpose=purpose, filename=filename, expires_after=expires_after
        )
        return self._run(endpoints.upload_file(self.config, upload))

    def list_files(
        self, *, purpose: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> Iterator[File]:
        """Your files, newest first, page after page (up to `limit`)."""
        for data in self._pages(endpoints.file_pages(limit, page_size, purpose)):
            yield File.from_api(data)

    def get_file(self, file_id: str) -> File:
        """A file's metadata."""
        return self._run(endpoints.get_file(file_id))

    def delete_file(self, file_id: str) -> None:
        """Delete a file (ConflictError while a job validates it)."""
        self._run(endpoints.delete_file(file_id))

    def file_content(self, file_id: str) -> Iterator[bytes]:
        """A file's bytes as uploaded, streamed in blocks."""
        return self._blocks(endpoints.file_content(file_id))

    def usage_page(
        self,
        *,
        start: str | None = None,
        end: str | None = None,
        group_by: str = "day",
        tenant: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page of GET /v1/usage: groups of UTC days start to end (YYYY-MM-DD) by day,
        model or job, `totals`, and `next_cursor` for `after`; an admin key may name a
        `tenant` (else it sees every tenant's)."""
        plan = endpoints.usage_page(
            start=start, end=end, group_by=group_by, tenant=tenant, limit=limit, after=after
        )
        return self._run(plan)

    def list_models(self) -> list[dict[str, Any]]:
        """Each model's task, output size, limits and live workers."""
        return self._run(endpoints.list_models())

    def close(self) -> None:
        """Close the connections (not those of an http_client given to the constructor)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
