"""`AsyncJob`: a submitted job of an `AsyncClient`, with Job's methods awaited."""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio.to_thread

from sluice_client.jobs import remaining
from sluice_client.progress import job_progress
from sluice_client.resources import JobView, format_of_path
from sluice_client.tables import read_parquet, table_to_pandas

if TYPE_CHECKING:
    from sluice_client.async_client import AsyncClient


class AsyncJob(JobView):
    """A job as last read (`data`, and attributes for its main fields), and what to do
    with it, awaited."""

    def __init__(self, client: AsyncClient, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.client = client

    async def refresh(self, *, wait: float = 0) -> AsyncJob:
        """Read the job again (with `wait`, as soon as it changes within that many
        seconds); returns itself."""
        self.data = (await self.client.get_job(self.id, wait=wait)).data
        return self

    async def wait(
        self, *, progress: bool = False, timeout: float | None = None, stream: TextIO | None = None
    ) -> AsyncJob:
        """Long-poll until the job ends (TimeoutError after `timeout` seconds), drawing its
        progress on stderr (or `stream`) with `progress=True`; returns itself."""
        deadline = None if timeout is None else time.monotonic() + timeout
        display = job_progress(progress, stream)
        try:
            display.update(self.data)
            while not self.done:
                await self.refresh(wait=remaining(deadline, self.id, timeout))
                display.update(self.data)
        finally:
            display.close()
        return self

    async def cancel(self) -> AsyncJob:
        """Ask the job to stop; returns itself, as the server now shows it."""
        self.data = (await self.client.cancel_job(self.id)).data
        return self

    async def retry(self) -> AsyncJob:
        """A new job of this finished job's failed items (ConflictError if none failed)."""
        return await self.client.retry_job(self.id)

    def results(self, *, only_failed: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Result lines in input order, streamed (`async for`)."""
        return self.client.results(self.id, only_failed=only_failed)

    async def download(
        self, path: str | Path, *, format: str | None = None, only_failed: bool = False
    ) -> Path:
        """Write the results to a file, in the format its suffix names unless `format` is
        given; returns the path."""
        path = Path(path)
        fmt = format_of_path(str(path), format)
        with path.open("wb") as out:
            async for block in self.client.download_results(
                self.id, format=fmt, only_failed=only_failed
            ):
                out.write(block)
        return path

    async def to_arrow(self, *, only_failed: bool = False) -> Any:
        """The results as a pyarrow Table (from the API's Parquet, spooled to disk)."""
        with tempfile.TemporaryFile() as spool:
            async for block in self.client.download_results(
                self.id, format="parquet", only_failed=only_failed
            ):
                spool.write(block)
            spool.seek(0)
            return await anyio.to_thread.run_sync(read_parquet, spool)

    async def to_pandas(self, *, only_failed: bool = False) -> Any:
        """The results as a pandas DataFrame."""
        return table_to_pandas(await self.to_arrow(only_failed=only_failed))
