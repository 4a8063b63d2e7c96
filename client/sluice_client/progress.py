"""A job's progress on stderr while `wait(progress=True)` runs: a rich bar where rich is
installed, else a plain line (rewritten in place on a terminal, printed now and then
elsewhere)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

# Off a terminal the plain line is printed on a change of status, or this often.
PLAIN_EVERY_SECONDS = 10.0


def start_display_thread(start: Callable[[], None]) -> None:
    """Call `start`, which starts a thread (a live display's refresher), with SIGINT blocked
    for that thread: a Ctrl-C then always lands on the main thread. Taken by another
    thread, it would wait for the main thread's blocking call (a 30 s long-poll read) to
    end before it stopped anything."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: signals go to the main thread
        start()
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class JobProgress(Protocol):
    """Draws a job as it changes."""

    def update(self, job: Mapping[str, Any]) -> None:
        """Show the job as it is now."""

    def close(self) -> None:
        """Leave the last state on screen."""


def _done(job: Mapping[str, Any]) -> tuple[int, int]:
    counts = job.get("counts") or {}
    return (
        int(counts.get("completed", 0)) + int(counts.get("failed", 0)),
        int(counts.get("total", 0)),
    )


def describe(job: Mapping[str, Any]) -> str:
    """One line: status, items done of total, percent, items/s and ETA."""
    done, total = _done(job)
    parts = [f"{job.get('id', 'job')} {job.get('status', '?')}: {done:,}/{total:,}"]
    if total:
        parts.append(f"({done / total:.0%})")
    if job.get("throughput"):
        parts.append(f"{job['throughput']:,.0f} items/s")
    if job.get("eta_seconds") is not None and job.get("status") == "in_progress":
        parts.append(f"ETA {job['eta_seconds']:,.0f} s")
    return " ".join(parts)


class NoProgress:
    """Draws nothing."""

    def update(self, job: Mapping[str, Any]) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


class PlainProgress:
    """A plain line on a text stream."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""
        self.printed = ""
        self.last_status: Any = None
        self.printed_at = 0.0
        self.width = 0

    def update(self, job: Mapping[str, Any]) -> None:
        """Rewrite the line (terminal), or print it on a new status or now and then."""
        text = describe(job)
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
            self.stream.flush()
        elif job.get("status") != self.last_status or (
            time.monotonic() - self.printed_at >= PLAIN_EVERY_SECONDS and text != self.printed
        ):
            self._print(text)
        self.last, self.last_status = text, job.get("status")

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self.printed, self.printed_at = text, time.monotonic()

    def close(self) -> None:
        """End the line (terminal), or print the final state if it was not."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        elif self.last != self.printed:
            self._print(self.last)


class RichProgress:
    """A rich progress bar with items/s and ETA."""

    def __init__(self, stream: TextIO) -> None:
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

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} items/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
        )
        self.task: Any = None

    def update(self, job: Mapping[str, Any]) -> None:
        """Move the bar to the job's counts."""
        done, total = _done(job)
        rate = job.get("throughput")
        status = str(job.get("status", ""))
        shown = f"{rate:,.0f}" if rate else "-"
        if self.task is None:
            start_display_thread(self.bar.start)
            self.task = self.bar.add_task(status, total=total or None, rate=shown)
        self.bar.update(
            self.task, completed=done, total=total or None, description=status, rate=shown
        )

    def close(self) -> None:
        """Stop the live display, leaving the bar's last state."""
        # Also when update() was interrupted (Ctrl-C) between starting the display and
        # adding its task: a display left running keeps stderr redirected into it.
        self.bar.stop()


def job_progress(enabled: bool, stream: TextIO | None = None) -> JobProgress:
    """The progress display to use: none, rich where importable, else a plain line."""
    if not enabled:
        return NoProgress()
    out = stream or sys.stderr
    try:
        return RichProgress(out)
    except ImportError:
        return PlainProgress(out)
