"""Following a job to its end through the client's `Job.wait(progress=True)` (its progress
bar), then one closing line: `completed: N ok, M failed in T s, R items/s`, or, for a file
refused in validation, its errors and what to do. Ctrl-C says how to come back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO, cast

import typer
from rich.console import Console
from rich.markup import escape
from sluice_client import Job

from cli.app import program
from cli.client import Client
from cli.humanize import duration, items_per_second

# Validation errors shown under a refused file; the rest are counted.
SHOWN_ERRORS = 10


def summary_line(job: Mapping[str, Any]) -> str:
    """`completed: 900 ok, 0 failed in 3.2 s, 281 items/s` (cancelled ones where counted)."""
    counts = job.get("counts") or {}
    ok, failed = counts.get("completed", 0), counts.get("failed", 0)
    line = f"{job.get('status')}: {ok:,} ok, {failed:,} failed"
    if counts.get("cancelled"):
        line += f", {counts['cancelled']:,} cancelled"
    rate = job.get("throughput")
    done = int(counts.get("completed", 0)) + int(counts.get("failed", 0))
    if rate:  # throughput is items over the job's running time: that time is done / rate
        line += f" in {duration(done / rate)}, {items_per_second(rate)}"
    return line


def refused_in_validation(job: Mapping[str, Any]) -> bool:
    """Whether the job failed before any item ran: its file was refused."""
    counts = job.get("counts") or {}
    ran = int(counts.get("completed", 0)) + int(counts.get("failed", 0))
    return job.get("status") == "failed" and not ran and bool(job.get("errors"))


def error_lines(errors: Mapping[str, Any] | None, limit: int = SHOWN_ERRORS) -> list[str]:
    """A file's validation errors, at most `limit`, then how many more there are."""
    data = list((errors or {}).get("data") or [])
    lines = []
    for e in data[:limit]:
        where = f"line {e['line']}: " if e.get("line") is not None else ""
        lines.append(f"  {where}{e.get('code')}: {e.get('message')}")
    found = (errors or {}).get("invalid_lines", 0) + (errors or {}).get("duplicates", 0)
    more = max(int(found or 0), len(data)) - min(limit, len(data))
    if more > 0:
        lines.append(f"  ... and {more:,} more")
    return lines


def report(job: Mapping[str, Any], console: Console) -> None:
    """The closing line of a followed job, and its validation errors if any."""
    errors = job.get("errors")
    if refused_in_validation(job):
        console.print("[red]failed: the file was refused in validation; no item ran[/]")
    else:
        console.print(escape(summary_line(job)))
    for line in error_lines(errors):
        console.print(escape(line))
    if refused_in_validation(job) and (errors or {}).get("invalid_lines"):
        console.print(
            "fix those lines, or submit again with `--on-invalid skip`: the valid lines "
            "run and each invalid one fails alone"
        )


def resume_hint(job_id: str) -> list[str]:
    """What to type to follow or cancel a job one stopped watching."""
    p = program()
    return [
        f"stopped following {job_id}; it keeps running.",
        f"  follow it: {p} status {job_id} --follow",
        f"  cancel it: {p} cancel {job_id}",
    ]


@contextmanager
def resumable(job_id: str, console: Console) -> Iterator[None]:
    """Ctrl-C within: print how to follow or cancel the job and exit 130 (the job runs on).
    Entered before the job's id is printed, so that no Ctrl-C after it goes unexplained."""
    try:
        yield
    except KeyboardInterrupt:
        console.print()
        for line in resume_hint(job_id):
            console.print(escape(line), soft_wrap=True)
        raise typer.Exit(130) from None


def watch(client: Client, job_id: str, console: Console) -> Job:
    """Wait for the job with the client's progress bar (Ctrl-C: see resumable)."""
    with resumable(job_id, console):
        return client.job_handle(job_id).wait(progress=True, stream=cast(TextIO, console.file))


def follow(client: Client, job_id: str, console: Console) -> Job:
    """watch(), then the closing line (and validation errors)."""
    job = watch(client, job_id, console)
    report(job.data, console)
    return job
