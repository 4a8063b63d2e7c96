"""What `status`, `jobs`, `files`, `batches` and `models` print for people: rich tables with
relative times (`--json` prints the API's objects instead). Pure: data in, renderables out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.humanize import duration, items_per_second, relative_time, size

STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "expired": "yellow",
    "in_progress": "cyan",
    "waiting_for_worker": "magenta",
}


# Width of tables written to a pipe or a file, where no terminal says how wide to be.
PIPE_WIDTH = 240


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or wide enough off a terminal that a
    table's ids are never cut (scripts and tests read them)."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _id_column(table: Table, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """A column of ids: never wrapped or cut, on a terminal as narrow as any."""
    width = max([len(str(r.get("id"))) for r in rows] + [len(name)])
    table.add_column(name, no_wrap=True, min_width=width)


def status_text(job: Mapping[str, Any]) -> Text:
    """A job's status, coloured; a job with no live worker for its model says so."""
    status = str(job.get("status", "?"))
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    if job.get("waiting_for_worker") and status != "waiting_for_worker":
        text.append(" (waiting for a worker)", style=STATUS_STYLES["waiting_for_worker"])
    return text


def counts_text(counts: Mapping[str, Any]) -> str:
    """`6,000 items: 5,990 ok, 10 failed` (and cancelled ones, where the API counts them)."""
    parts = [f"{counts.get('completed', 0):,} ok", f"{counts.get('failed', 0):,} failed"]
    if counts.get("cancelled"):
        parts.append(f"{counts['cancelled']:,} cancelled")
    return f"{counts.get('total', 0):,} items: " + ", ".join(parts)


def _done(counts: Mapping[str, Any]) -> str:
    done = int(counts.get("completed", 0)) + int(counts.get("failed", 0))
    return f"{done:,}/{int(counts.get('total', 0)):,}"


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    return grid


def job_view(job: Mapping[str, Any], now: float | None = None) -> Table:
    """One job, a field a row."""
    grid = _grid()
    counts = job.get("counts") or {}
    grid.add_row("job", str(job.get("id")))
    grid.add_row("model", f"{job.get('model')} ({job.get('task')})")
    grid.add_row("status", status_text(job))
    progress = f" ({float(job.get('progress') or 0):.0%} done)" if counts.get("total") else ""
    grid.add_row("items", counts_text(counts) + progress)
    if job.get("throughput"):
        grid.add_row("speed", items_per_second(job.get("throughput")))
    if job.get("eta_seconds") is not None:
        grid.add_row("ETA", duration(job.get("eta_seconds")))
    for name in ("created", "started", "finished", "cancelled", "expires"):
        value = job.get(f"{name}_at")
        if value is not None:
            grid.add_row(name, relative_time(value, now))
    for name, field in (("input file", "input_file_id"), ("retry of", "retry_of")):
        if job.get(field):
            grid.add_row(name, str(job[field]))
    if job.get("priority"):
        grid.add_row("priority", str(job["priority"]))
    if job.get("metadata"):
        grid.add_row("metadata", ", ".join(f"{k}={v}" for k, v in job["metadata"].items()))
    return grid


def job_list(jobs: Sequence[Mapping[str, Any]], now: float | None = None) -> Table:
    """Jobs, a row each, newest first."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, "JOB", jobs)
    for name, justify in (
        ("MODEL", "left"),
        ("STATUS", "left"),
        ("DONE", "right"),
        ("FAILED", "right"),
        ("CREATED", "left"),
        ("FINISHED", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for job in jobs:
        counts = job.get("counts") or {}
        table.add_row(
            str(job.get("id")),
            str(job.get("model")),
            status_text(job),
            _done(counts),
            f"{int(counts.get('failed', 0)):,}",
            relative_time(job.get("created_at"), now),
            relative_time(job.get("finished_at"), now),
        )
    return table


def file_list(files: Sequence[Mapping[str, Any]], now: float | None = None) -> Table:
    """Uploaded files, a row each."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, "FILE", files)
    for name in ("NAME", "PURPOSE", "LINES", "SIZE", "CREATED", "EXPIRES"):
        table.add_column(name, justify="right" if name in ("LINES", "SIZE") else "left")
    for f in files:
        table.add_row(
            str(f.get("id")),
            str(f.get("filename")),
            str(f.get("purpose")),
            f"{int(f.get('lines') or 0):,}",
            size(f.get("bytes")),
            relative_time(f.get("created_at"), now),
            relative_time(f.get("expires_at"), now) if f.get("expires_at") else "never",
        )
    return table


def batch_list(batches: Sequence[Mapping[str, Any]], now: float | None = None) -> Table:
    """OpenAI-compatible batches, a row each."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, "BATCH", batches)
    for name in ("ENDPOINT", "MODEL", "STATUS", "DONE", "FAILED", "CREATED"):
        table.add_column(name, justify="right" if name in ("DONE", "FAILED") else "left")
    for b in batches:
        counts = b.get("request_counts") or {}
        table.add_row(
            str(b.get("id")),
            str(b.get("endpoint")),
            str(b.get("model")),
            status_text(b),
            _done(counts),
            f"{int(counts.get('failed', 0)):,}",
            relative_time(b.get("created_at"), now),
        )
    return table


def _output(model: Mapping[str, Any]) -> str:
    if model.get("dimensions"):
        return f"{model['dimensions']} dims"
    if model.get("labels"):
        return f"{len(model['labels'])} labels"
    return "text" if model.get("task") == "generate" else "-"


def model_list(models: Sequence[Mapping[str, Any]]) -> Table:
    """Registered models, a row each, with their live workers."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, "MODEL", models)
    for name in ("TASK", "OUTPUT", "MAX LENGTH", "DTYPE", "WORKERS"):
        table.add_column(name, justify="right" if name in ("MAX LENGTH", "WORKERS") else "left")
    for m in models:
        live = m.get("live_workers")
        workers = "-" if live is None else Text(str(live), style="" if live else "red")
        table.add_row(
            str(m.get("id")),
            str(m.get("task")),
            _output(m),
            f"{int(m.get('max_length') or 0):,}",
            str(m.get("dtype")),
            workers,
        )
    return table
