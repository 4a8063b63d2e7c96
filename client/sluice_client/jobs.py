"""`Job`: a submitted job of a `Client`, to follow, cancel, retry and read results from."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sluice_client.progress import job_progress
from sluice_client.resources import JobView, format_of_path
from sluice_client.tables import read_parquet, table_to_pandas

if TYPE_CHECKING:
    from sluice_client.client import Client

# Seconds one long-poll asks the server to hold its answer while nothing changes.
POLL_SECONDS = 30.0


def remaining(deadline: float | None, job_id: str, timeout: float | None) -> float:
    """Seconds left before the deadline (TimeoutError once none are)."""
    if deadline is None:
        return POLL_SECONDS
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"job {job_id} has not ended after {timeout} s")
    return min(POLL_SECONDS, left)


class Job(JobView):
    """A job as last read (`data`, and attributes for its main fields), and what to do
    with it."""

    def __init__(self, client: Client, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.client = client

    def refresh(self, *, wait: float = 0) -> Job:
        """Read the job again (with `wait`, as soon as it changes within that many
        seconds); returns itself."""
        self.data = self.client.get_job(self.id, wait=wait).data
        return self

    def wait(
        self, *, progress: bool = False, timeout: float | None = None, stream: TextIO | None = None
    ) -> Job:
        """Long-poll until the job ends (TimeoutError after `timeout` seconds), drawing its
        progress on stderr (or `stream`) with `progress=True`; returns itself."""
        deadline = None if timeout is None else time.monotonic() + timeout
        display = job_progress(progress, stream)
        try:
            display.update(self.data)
            while not self.done:
                self.refresh(wait=remaining(deadline, self.id, timeout))
                display.update(self.data)
        finally:
            display.close()
        return self

    def cancel(self) -> Job:
        """Ask the job to stop; returns itself, as the server now shows it."""
        self.data = self.client.cancel_job(self.id).data
        return self

    def retry(self) -> Job:
        """A new job of this finished job's failed items (ConflictError if none failed)."""
        return self.client.retry_job(self.id)

    def results(self, *, only_failed: bool = False) -> Iterator[dict[str, Any]]:
        """Result lines `{custom_id, index, output | error, ...}` in input order, streamed
        (a running job gives its finished items)."""
        return self.client.results(self.id, only_failed=only_failed)

    def download(
        self, path: str | Path, *, format: str | None = None, only_failed: bool = False
    ) -> Path:
        """Write the results to a file, in the format its suffix names (.jsonl, .csv,
        .parquet) unless `format` is given; returns the path."""
        path = Path(path)
        fmt = format_of_path(str(path), format)
        with path.open("wb") as out:
            for block in self.client.download_results(self.id, format=fmt, only_failed=only_failed):
                out.write(block)
        return path

    def to_arrow(self, *, only_failed: bool = False) -> Any:
        """The results as a pyarrow Table, from the API's Parquet (typed columns; an
        embedding is a fixed-size float32 list). Spooled through a temporary file."""
        with tempfile.TemporaryFile() as spool:
            for block in self.client.download_results(
                self.id, format="parquet", only_failed=only_failed
            ):
                spool.write(block)
            spool.seek(0)
            return read_parquet(spool)

    def to_pandas(self, *, only_failed: bool = False) -> Any:
        """The results as a pandas DataFrame (the columns of to_arrow)."""
        return table_to_pandas(self.to_arrow(only_failed=only_failed))
