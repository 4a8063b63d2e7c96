"""A job seen from inside, for the dashboard: its chunks by status and its throughput over
time. Both come from the chunk rows (their finished_at, items and compute seconds), so a
job's history survives any restart of the API or the workers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.tables import Chunk

# Bucket widths a throughput chart steps through (seconds): round numbers on a time axis.
NICE_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200)
DAY_SECONDS = 86400
# Finished chunks are read this many rows at a time (a job may have tens of thousands).
STREAM_ROWS = 2000


@dataclass(frozen=True)
class ChunkState:
    """How many of a job's chunks are in one status, with their items and compute time."""

    status: str
    chunks: int
    items: int
    compute_seconds: float


@dataclass(frozen=True)
class Throughput:
    """A job's finished items over time, since its first chunk started, in buckets of
    bucket_seconds: `items` counts the items whose chunk finished in each bucket (they sum
    to the finished items); `worked` spreads each chunk's items over the time it ran, so
    worked[i] / bucket_seconds is the items per second processed in bucket i (chunks that
    ran side by side add up). Both are empty before any chunk finishes."""

    start: float | None
    bucket_seconds: float
    items: list[int]
    worked: list[float]


def chunk_states(*, session: Session, job_id: str) -> list[ChunkState]:
    """The job's chunks grouped by status, in one aggregate query."""
    rows = session.execute(
        select(
            Chunk.status,
            func.count(),
            func.coalesce(func.sum(Chunk.n_items), 0),
            func.coalesce(func.sum(Chunk.compute_seconds), 0.0),
        )
        .where(Chunk.job_id == job_id)
        .group_by(Chunk.status)
    )
    return [
        ChunkState(status=s, chunks=int(n), items=int(items), compute_seconds=float(secs or 0))
        for s, n, items, secs in rows
    ]


def bucket_width(span_seconds: float, max_points: int) -> float:
    """The smallest round width that cuts a span into at most max_points buckets."""
    wanted = max(span_seconds, 0.0) / max(max_points, 1)
    for width in NICE_SECONDS:
        if width >= wanted:
            return float(width)
    return float(DAY_SECONDS * math.ceil(wanted / DAY_SECONDS))


def _spread(
    worked: list[float], start: float, width: float, ran: tuple[float, float], n: int
) -> None:
    """Add n items to the buckets of worked in proportion to how much of the interval
    `ran` (started, finished) each bucket covers."""
    began, ended = ran
    first = int((began - start) // width)
    last = min(int((ended - start) // width), len(worked) - 1)
    for slot in range(max(first, 0), last + 1):
        low, high = start + slot * width, start + (slot + 1) * width
        overlap = min(ended, high) - max(began, low)
        if overlap > 0:
            worked[slot] += n * overlap / (ended - began)


def throughput_series(*, session: Session, job_id: str, max_points: int = 120) -> Throughput:
    """The job's Throughput from each finished chunk's started_at, finished_at and item
    counts: at most max_points + 1 buckets, whatever the job's size. The rows are streamed,
    so memory holds the buckets, never the chunks."""
    finished = (Chunk.job_id == job_id, Chunk.finished_at.is_not(None))
    done_items = Chunk.completed + Chunk.failed
    first_start, first_end, last_end = session.execute(
        select(func.min(Chunk.started_at), func.min(Chunk.finished_at), func.max(Chunk.finished_at))
        .where(*finished)
        .where(done_items > 0)
    ).one()
    if last_end is None:
        return Throughput(start=None, bucket_seconds=1.0, items=[], worked=[])
    start = min(t for t in (first_start, first_end) if t is not None)
    width = bucket_width(last_end - start, max_points)
    items = [0] * (int((last_end - start) // width) + 1)
    worked = [0.0] * len(items)
    rows = session.execute(
        select(Chunk.started_at, Chunk.finished_at, done_items)
        .where(*finished)
        .where(done_items > 0),
        execution_options={"yield_per": STREAM_ROWS},
    )
    for started_at, finished_at, n in rows:
        ended = finished_at or start
        items[min(max(int((ended - start) // width), 0), len(items) - 1)] += int(n)
        if started_at is not None and started_at < ended:
            _spread(worked, start, width, (started_at, ended), int(n))
        else:  # no interval to spread over: it all lands when the chunk finished
            worked[min(max(int((ended - start) // width), 0), len(worked) - 1)] += int(n)
    return Throughput(start=start, bucket_seconds=width, items=items, worked=worked)
