"""`sluice status`, `cancel`, `retry` and `results`: one job at a time, by id."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.app import app, err, fail, program
from cli.tables import stdout_console

# Suffixes `results -o` writes, and the format each asks the API for.
RESULT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
JSON_OPTION = typer.Option("--json", help="The API's JSON object instead of a table")


def _done(job: dict[str, Any]) -> str:
    counts = job.get("counts") or {}
    done = int(counts.get("completed", 0)) + int(counts.get("failed", 0))
    return f"{done:,} of {int(counts.get('total', 0)):,} items done"


def _waiting_hint(job: dict[str, Any]) -> None:
    if job.get("waiting_for_worker") or job.get("status") == "waiting_for_worker":
        err.print(
            f"[magenta]no live worker serves {escape(str(job.get('model')))}: start one with "
            f"`{program()} worker --models {escape(str(job.get('model')))}`[/]"
        )


@app.command()
def status(
    job_id: str,
    wait: Annotated[float, typer.Option(help="Long-poll up to N seconds for a change")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", help="Follow the job to its end with a progress bar")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show a job: status, counts, speed, ETA and times (or follow it to its end)."""
    from cli.client import Client
    from cli.follow import error_lines
    from cli.follow import follow as follow_job
    from cli.tables import job_view

    client = Client()
    if follow:
        if follow_job(client, job_id, err).status == "failed":
            raise typer.Exit(1)
        return
    job = client.job(job_id, wait=wait)
    if as_json:
        print(json.dumps(job, indent=2))
        return
    stdout_console().print(job_view(job))
    for line in error_lines(job.get("errors")):
        stdout_console().print(escape(line))
    _waiting_hint(job)


@app.command()
def cancel(job_id: str, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Cancel a job: unstarted work at once, running work within a micro-batch."""
    from cli.client import Client

    client = Client()
    ended = client.job(job_id)["status"] in TERMINAL
    job = client.cancel(job_id)
    if as_json:
        print(json.dumps(job, indent=2))
    elif ended:
        print(f"{job_id} had already ended ({job['status']}, {_done(job)}): nothing to cancel")
    elif job["status"] == "cancelling":
        print(
            f"cancelling {job_id} ({_done(job)}): running chunks stop within a micro-batch; "
            f"`{program()} status {job_id} --follow` shows the end"
        )
    elif job["status"] == "cancelled":  # at once: nothing ran yet
        print(f"cancelled {job_id} ({_done(job)}; their results are kept)")
    else:
        print(f"{job_id} ended ({job['status']}, {_done(job)}) before the cancel took effect")


RETRY_KINDS = ("failed", "cancelled")


@app.command()
def retry(
    job_id: str,
    include: Annotated[
        str | None,
        typer.Option(
            help="Which items: failed (the default), cancelled (those a cancel kept from "
            "running), or failed,cancelled"
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the new job with a progress bar")] = False,
) -> None:
    """Submit a new job of a finished job's failed (or cancelled) items; print its id."""
    from cli.client import Client
    from cli.follow import follow, resumable

    kinds = None if include is None else [k.strip() for k in include.split(",") if k.strip()]
    if kinds is not None and (not kinds or set(kinds) - set(RETRY_KINDS)):
        raise fail(f"--include takes {', '.join(RETRY_KINDS)} or both, comma-separated", code=2)
    client = Client()
    job = client.retry(job_id, include=kinds)
    with resumable(job["id"], err):
        print(job["id"], flush=True)
        err.print(f"{job['id']} retries {job['counts']['total']:,} items of {job_id}")
        if wait and follow(client, job["id"], err).status == "failed":
            raise typer.Exit(1)


def _result_format(output: Path | None) -> str:
    if output is None:
        return "jsonl"
    fmt = RESULT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise fail(
            f"-o {output}: {output.suffix or 'no suffix'} is not a results format",
            "name the file .jsonl, .csv or .parquet (or leave out -o for JSONL on stdout)",
            code=2,
        )
    return fmt


def _ready(client: Any, job: dict[str, Any], job_id: str, partial: bool, wait: bool) -> None:
    """Refuse a job that still runs unless --partial (with a warning) or --wait."""
    if job["status"] in TERMINAL:
        return
    if wait:
        from cli.follow import follow

        follow(client, job_id, err)
    elif partial:
        err.print(
            f"[yellow]{job_id} is {job['status']} ({_done(job)}): writing the finished "
            "items only[/]"
        )
    else:
        raise fail(
            f"{job_id} is {job['status']} ({_done(job)}): its results are not all there yet",
            f"wait for them with `{program()} results {job_id} --wait ...`, or take what "
            "is there with --partial",
        )


@app.command()
def results(
    job_id: str,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="File: .jsonl, .csv or .parquet chooses the format (default: JSONL on stdout)",
        ),
    ] = None,
    only_failed: Annotated[
        bool, typer.Option("--only-failed", help="Only the failed items")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow a running job to its end first")
    ] = False,
    partial: Annotated[
        bool, typer.Option("--partial", help="Take a running job's finished items now")
    ] = False,
) -> None:
    """Download a job's results in input order (a running job's: --wait or --partial)."""
    from rich.progress import (
        BarColumn,
        FileSizeColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from sluice_client.progress import start_display_thread

    from cli.client import Client

    fmt = _result_format(output)
    client = Client()
    job = client.job(job_id)  # before -o is created: an unknown job fails
    _ready(client, job, job_id, partial, wait)
    counts = client.job(job_id)["counts"] if wait else job["counts"]
    if fmt == "jsonl":  # items, counted against the job's totals
        total = counts["failed"] if only_failed else counts["total"]
        columns: tuple = (BarColumn(), MofNCompleteColumn())
    else:  # csv and parquet: bytes, whose total is not known up front
        total, columns = None, (BarColumn(), FileSizeColumn(), TransferSpeedColumn())
    sink = output.open("wb") if output else sys.stdout.buffer
    try:
        bar = Progress(
            TextColumn(f"results ({fmt})"),
            *columns,
            TimeElapsedColumn(),
            console=err,
            disable=output is None,
        )
        start_display_thread(bar.start)  # Ctrl-C stays on this thread (`with` starts no other)
        with bar:
            task = bar.add_task("results", total=total)
            if fmt == "jsonl":
                for line in client.results(job_id, only_failed=only_failed):
                    sink.write(line + b"\n")
                    bar.advance(task)
            else:
                for block in client.download(job_id, fmt=fmt, only_failed=only_failed):
                    sink.write(block)
                    bar.advance(task, len(block))
    finally:
        if output:
            sink.close()
