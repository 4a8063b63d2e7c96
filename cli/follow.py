"""Following a job with a live progress bar (items, items/s, ETA)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.client import Client

TERMINAL = {"completed", "failed", "cancelled", "expired"}


def follow_job(client: Client, job_id: str, console: Console | None = None) -> dict:
    """Long-poll a job until it ends, drawing its progress; return the final job."""
    console = console or Console(stderr=True)
    job = client.job(job_id)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} items/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(job["status"], total=job["counts"]["total"], rate="-")
        while True:
            counts = job["counts"]
            rate = job.get("throughput")
            bar.update(
                task,
                completed=counts["completed"] + counts["failed"],
                description=job["status"],
                rate=f"{rate:,.0f}" if rate else "-",
            )
            if job["status"] in TERMINAL:
                return job
            job = client.job(job_id, wait=2.0)
