"""`AsyncClient`: the client for asyncio (or trio) code, with Client's surface awaited. It
sends the same plans and flows as Client (endpoints.py, flows.py), over an
httpx.AsyncClient."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from sluice_client import endpoints, flows, submission
from sluice_client.async_jobs import AsyncJob
from sluice_client.attempts import connection_error
from sluice_client.base_client import BaseClient
from sluice_client.inputs import InputSource, ain_blocks, aitem_lines, item_lines, path_blocks
from sluice_client.lines import asplit_lines
from sluice_client.multipart import amultipart_blocks
from sluice_client.plans import Flow, Plan, ReadInline, Upload
from sluice_client.resources import File

T = TypeVar("T")


async def _aiter(items: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _chain(
    head: Iterable[bytes], rest: Iterable[bytes] | AsyncIterable[bytes]
) -> AsyncIterator[bytes]:
    for line in head:
        yield line
    async for line in _aiter(rest):
        yield line


async def _file_blocks(path: Path) -> AsyncIterator[bytes]:
    """A file's upload blocks, each read on a worker thread (the event loop never waits
    on the disk)."""
    blocks: Iterator[bytes] = path_blocks(path)
    while (block := await anyio.to_thread.run_sync(next, blocks, None)) is not None:
        yield block


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """A sluice API and a key, for async code: Client's methods, awaited (and async
    iterators where Client's return iterators). Use `async with`, or `await close()`."""

    def _new_http(self, timeout: float | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout)

    # --- transport: plans and flows over httpx.AsyncClient ----------------------------

    async def _send(self, plan: Plan[Any], *, stream: bool = False) -> httpx.Response:
        """The answer to a plan, retried as the policy allows; an error answer raises."""
        attempts = self._attempts(plan)
        while True:
            body = self._upload_body(plan.upload) if plan.upload is not None else None
            request = attempts.request(self._http, body)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                await anyio.sleep(attempts.wait_after_transport_error(exc))
                continue
            if response.status_code < 400:
                return response
            try:
                error_body = await response.aread()
            finally:
                await response.aclose()
            await anyio.sleep(
                attempts.wait_after_error(response.status_code, error_body, response.headers)
            )

    async def _run(self, plan: Plan[T]) -> T:
        return plan.parse(await self._send(plan))

    async def _drive(self, flow: Flow[T]) -> T:
        """A flow's result, each of its steps answered in turn."""
        answer: Any = None
        try:
            while True:
                step = flow.send(answer)
                if isinstance(step, ReadInline):
                    answer = await self._read(step)
                else:
                    answer = await self._run(step)
        except StopIteration as end:
            return end.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    async def _read(
        self, step: ReadInline
    ) -> tuple[list[bytes], bytes | None, AsyncIterator[bytes]]:
        """Inputs (async or not) as JSONL lines, read while they fit inline; the rest left
        unread."""
        if isinstance(step.inputs, AsyncIterable):
            lines = aitem_lines(step.inputs)
        else:
            lines = _aiter(item_lines(step.inputs))
        taken, overflow = await submission.atake_inline(
            lines, max_items=step.max_items, max_bytes=step.max_bytes
        )
        return taken, overflow, lines

    async def _blocks(self, plan: Plan[Any]) -> AsyncIterator[bytes]:
        """A streamed answer's body in blocks (a connection lost midway raises
        APIConnectionError: a stream cannot resume where it broke)."""
        response = await self._send(plan, stream=True)
        try:
            async for block in response.aiter_bytes():
                yield block
        except httpx.TransportError as exc:
            raise connection_error(exc, self.config.base_url) from exc
        finally:
            await response.aclose()

    async def _pages(self, pages: endpoints.Pages) -> AsyncIterator[dict[str, Any]]:
        """A list's items, page after page."""
        while (plan := pages.next_call()) is not None:
            for data in pages.take(await self._run(plan)):
                yield data

    def _upload_body(self, upload: Upload) -> AsyncIterator[bytes]:
        """An upload's multipart body, streamed (a path is read again for each attempt, on
        a worker thread)."""
        if upload.path is not None:
            blocks = _file_blocks(upload.path)
        else:
            blocks = ain_blocks(_chain(upload.head, upload.lines))
        return amultipart_blocks(
            blocks, boundary=upload.boundary, filename=upload.filename, fields=upload.fields
        )

    # --- jobs ------------------------------------------------------------------------

    async def submit(
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
    ) -> AsyncJob:
        """Submit a job and return it (as Client.submit; `inputs` may also be an async
        iterable)."""
        options = submission.job_options(
            model=model,
            params=params,
            priority=priority,
            metadata=metadata,
            expires_after=expires_after,
        )
        flow = flows.submit(self.config, options, inputs, on_invalid=on_invalid, upload=upload)
        return AsyncJob(self, await self._drive(flow))

    async def submit_file(
        self,
        model: str,
        file_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        priority: int = 0,
        metadata: Mapping[str, str] | None = None,
        expires_after: int | None = None,
        on_invalid: str = "fail",
    ) -> AsyncJob:
        """A job of a file uploaded before (upload_file); a worker checks its lines first."""
        options = submission.job_options(
            model=model,
            params=params,
            priority=priority,
            metadata=metadata,
            expires_after=expires_after,
        )
        return AsyncJob(self, await self._run(endpoints.file_job(options, file_id, on_invalid)))

    async def get_job(self, job_id: str, *, wait: float = 0) -> AsyncJob:
        """A job; with `wait`, long-polled up to that many seconds for a change."""
        return AsyncJob(self, await self._run(endpoints.get_job(self.config, job_id, wait)))

    async def list_jobs(
        self,
        *,
        limit: int | None = None,
        page_size: int = 100,
        tenant: str | None = None,
        status: str | None = None,
        model: str | None = None,
    ) -> AsyncIterator[AsyncJob]:
        """Your jobs, newest first, page after page (up to `limit`), of one `status` or
        `model` when given."""
        pages = endpoints.job_pages(limit, page_size, tenant, status, model)
        async for data in self._pages(pages):
            yield AsyncJob(self, data)

    async def list_batches(
        self, *, limit: int | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Your OpenAI-compatible batches (as OpenAI's batch objects), newest first."""
        async for data in self._pages(endpoints.batch_pages(limit, page_size)):
            yield data

    async def cancel_job(self, job_id: str) -> AsyncJob:
        """Cancel a job."""
        return AsyncJob(self, await self._run(endpoints.cancel_job(job_id)))

    async def retry_job(self, job_id: str, *, include: Sequence[str] | None = None) -> AsyncJob:
        """A new job of a finished job's failed items (and `include`d kinds)."""
        return AsyncJob(self, await self._run(endpoints.retry_job(job_id, include)))

    def download_results(
        self, job_id: str, *, format: str = "jsonl", only_failed: bool = False
    ) -> AsyncIterator[bytes]:
        """A job's results in a format (jsonl, csv or parquet), as streamed blocks."""
        return self._blocks(endpoints.job_results(job_id, format, only_failed))

    def result_lines(self, job_id: str, *, only_failed: bool = False) -> AsyncIterator[bytes]:
        """A job's result lines as the API sends them (JSON bytes), in input order."""
        return asplit_lines(self.download_results(job_id, only_failed=only_failed))

    async def results(
        self, job_id: str, *, only_failed: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """A job's result lines, parsed, in input order, streamed."""
        async for line in self.result_lines(job_id, only_failed=only_failed):
            yield json.loads(line)

    # --- files -----------------------------------------------------------------------

    async def upload_file(
        self,
        source: str | Path | Iterable[bytes] | AsyncIterable[bytes],
        *,
        purpose: str = "jobs",
        filename: str | None = None,
        expires_after: int | None = None,
    ) -> File:
        """Upload a JSONL file, streamed (as Client.upload_file)."""
        upload = endpoints.upload_of(
            source, purpose=purpose, filename=filename, expires_after=expires_after
        )
        return await self._run(endpoints.upload_file(self.config, upload))

    async def list_files(
        self, *, purpose: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> AsyncIterator[File]:
        """Your files, newest first, page after page (up to `limit`)."""
        async for data in self._pages(endpoints.file_pages(limit, page_size, purpose)):
            yield File.from_api(data)

    async def get_file(self, file_id: str) -> File:
        """A file's metadata."""
        return await self._run(endpoints.get_file(file_id))

    async def delete_file(self, file_id: str) -> None:
        """Delete a file."""
        await self._run(endpoints.delete_file(file_id))

    def file_content(self, file_id: str) -> AsyncIterator[bytes]:
        """A file's bytes as uploaded, streamed in blocks."""
        return self._blocks(endpoints.file_content(file_id))

    async def usage_page(
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
        return await self._run(plan)

    async def list_models(self) -> list[dict[str, Any]]:
        """Each model's task, output size, limits and live workers."""
        return await self._run(endpoints.list_models())

    async def close(self) -> None:
        """Close the connections (not those of an http_client given to the constructor)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
