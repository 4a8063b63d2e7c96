"""`AsyncClient`: the client for asyncio (or trio) code, with Client's surface awaited."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx

from sluice_client import endpoints, submission
from sluice_client.async_jobs import AsyncJob
from sluice_client.calls import (
    Call,
    connection_error,
    delay_after_error,
    delay_after_transport_error,
)
from sluice_client.config import INLINE_MAX_BYTES, INLINE_MAX_ITEMS, ClientConfig
from sluice_client.errors import error_from_response
from sluice_client.inputs import (
    InputSource,
    ain_blocks,
    aitem_lines,
    input_path,
    item_lines,
    path_blocks,
)
from sluice_client.lines import asplit_lines
from sluice_client.multipart import amultipart_blocks
from sluice_client.resources import File


async def _aiter(lines: Iterable[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def _chain(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for line in head:
        yield line
    async for line in rest:
        yield line


async def _file_blocks(path: Path) -> AsyncIterator[bytes]:
    """A file's upload blocks, each read on a worker thread (the event loop never waits
    on the disk)."""
    blocks: Iterator[bytes] = path_blocks(path)
    while (block := await anyio.to_thread.run_sync(next, blocks, None)) is not None:
        yield block


class AsyncClient:
    """A sluice API and a key, for async code: Client's methods, awaited (and async
    iterators where Client's return iterators). Use `async with`, or `await close()`."""

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
        http_client: httpx.AsyncClient | None = None,
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
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    def _request(self, call: Call) -> httpx.Request:
        return call.build(self._http, self.config.base_url, self._headers)

    async def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """The answer to a call, retried as the policy allows; an error answer raises."""
        retry = 0
        while True:
            retry += 1
            try:
                response = await self._http.send(self._request(call), stream=stream)
            except httpx.TransportError as exc:
                delay = delay_after_transport_error(call, exc, retry, self.config.retry)
                if delay is None:
                    raise connection_error(exc, self.config.base_url) from exc
                await anyio.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            error = error_from_response(response.status_code, body, response.headers)
            delay = delay_after_error(call, error, retry, self.config.retry)
            if delay is None:
                raise error
            await anyio.sleep(delay)

    async def _json(self, call: Call) -> Any:
        return (await self._send(call)).json()

    async def _blocks(self, call: Call) -> AsyncIterator[bytes]:
        """A streamed answer's body in blocks (a connection lost midway raises
        APIConnectionError: a stream cannot resume where it broke)."""
        response = await self._send(call, stream=True)
        try:
            async for block in response.aiter_bytes():
                yield block
        except httpx.TransportError as exc:
            raise connection_error(exc, self.config.base_url) from exc
        finally:
            await response.aclose()

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
        submission.check_on_invalid(on_invalid)
        path = input_path(inputs)
        if path is not None:
            if upload is False:
                raise ValueError("a path is always uploaded as a file; pass its inputs instead")
            return await self._file_job(options, (await self.upload_file(path)).id, on_invalid)
        if isinstance(inputs, AsyncIterable):
            lines = aitem_lines(inputs)
        else:
            lines = _aiter(item_lines(inputs))  # type: ignore[arg-type]
        if upload:
            return await self._file_job(options, (await self._upload_lines(lines)).id, on_invalid)
        max_items, max_bytes = self.config.inline_limits(upload)
        taken, overflow = await submission.atake_inline(
            lines, max_items=max_items, max_bytes=max_bytes
        )
        if overflow is None:
            return AsyncJob(self, await self._json(endpoints.inline_job(options, taken)))
        uploaded = await self._upload_lines(_chain([*taken, overflow], lines))
        return await self._file_job(options, uploaded.id, on_invalid)

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
        return await self._file_job(options, file_id, on_invalid)

    async def _file_job(self, options: dict[str, Any], file_id: str, on_invalid: str) -> AsyncJob:
        return AsyncJob(self, await self._json(endpoints.file_job(options, file_id, on_invalid)))

    async def get_job(self, job_id: str, *, wait: float = 0) -> AsyncJob:
        """A job; with `wait`, long-polled up to that many seconds for a change."""
        return AsyncJob(self, await self._json(endpoints.get_job(self.config, job_id, wait)))

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
        while (call := pages.next_call()) is not None:
            for data in pages.take(await self._json(call)):
                yield AsyncJob(self, data)

    async def list_batches(
        self, *, limit: int | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Your OpenAI-compatible batches (as OpenAI's batch objects), newest first."""
        pages = endpoints.batch_pages(limit, page_size)
        while (call := pages.next_call()) is not None:
            for data in pages.take(await self._json(call)):
                yield data

    async def cancel_job(self, job_id: str) -> AsyncJob:
        """Cancel a job."""
        return AsyncJob(self, await self._json(endpoints.cancel_job(job_id)))

    async def retry_job(self, job_id: str) -> AsyncJob:
        """A new job of a finished job's failed items."""
        return AsyncJob(self, await self._json(endpoints.retry_job(job_id)))

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

    async def upload_file(
        self,
        source: str | Path | Iterable[bytes] | AsyncIterable[bytes],
        *,
        purpose: str = "jobs",
        filename: str | None = None,
        expires_after: int | None = None,
    ) -> File:
        """Upload a JSONL file, streamed (as Client.upload_file)."""
        fields = submission.upload_fields(purpose, expires_after)
        path = input_path(source)
        if path is None:
            lines = source if isinstance(source, AsyncIterable) else _aiter(source)  # type: ignore[arg-type]
            return await self._upload_lines(lines, fields=fields, filename=filename)
        call = endpoints.upload(
            self.config,
            lambda: _file_blocks(path),
            replayable=True,
            fields=fields,
            filename=filename or path.name,
            multipart=amultipart_blocks,
        )
        return File.from_api(await self._json(call))

    async def _upload_lines(
        self,
        lines: AsyncIterable[bytes],
        *,
        fields: dict[str, str] | None = None,
        filename: str | None = None,
    ) -> File:
        blocks = ain_blocks(lines)
        call = endpoints.upload(
            self.config,
            lambda: blocks,
            replayable=False,
            fields=fields or submission.upload_fields("jobs", None),
            filename=filename or "inputs.jsonl",
            multipart=amultipart_blocks,
        )
        return File.from_api(await self._json(call))

    async def list_files(
        self, *, purpose: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> AsyncIterator[File]:
        """Your files, newest first, page after page (up to `limit`)."""
        pages = endpoints.file_pages(limit, page_size, purpose)
        while (call := pages.next_call()) is not None:
            for data in pages.take(await self._json(call)):
                yield File.from_api(data)

    async def get_file(self, file_id: str) -> File:
        """A file's metadata."""
        return File.from_api(await self._json(endpoints.file_call("GET", file_id)))

    async def delete_file(self, file_id: str) -> None:
        """Delete a file."""
        await (await self._send(endpoints.file_call("DELETE", file_id))).aclose()

    def file_content(self, file_id: str) -> AsyncIterator[bytes]:
        """A file's bytes as uploaded, streamed in blocks."""
        return self._blocks(endpoints.file_call("GET", file_id, "/content"))

    async def list_models(self) -> list[dict[str, Any]]:
        """Each model's task, output size, limits and live workers."""
        return list((await self._json(endpoints.list_models()))["data"])

    async def close(self) -> None:
        """Close the connections (not those of an http_client given to the constructor)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
