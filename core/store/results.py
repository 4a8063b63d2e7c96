"""Reading a job's results: its result lines in input order, and the items a retry runs
again (failed, or never run because the job was cancelled), both one bucket at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import states
from core.codec import InputRecord, merge_in_order, unpack_inputs, unpack_lines
from core.jsonl import in_blocks
from core.result_lines import is_failure, result_index
from core.tables import Chunk

STREAM_FLUSH_BYTES = 1 << 20


def stream_results(
    *, session_factory: Callable[[], AbstractContextManager[Session]], job_id: str
) -> Iterator[bytes]:
    """A job's finished result lines in input order, one bucket at a time (bounded memory).

    Each bucket is read in its own short session; unfinished chunks are skipped, so a
    running job yields its finished items, still in input order.
    """
    after = -1
    while True:
        with session_factory() as session:
            bucket = session.scalar(
                select(func.min(Chunk.bucket)).where(Chunk.job_id == job_id, Chunk.bucket > after)
            )
            if bucket is None:
                return
            rows = session.execute(
                select(Chunk.outputs, Chunk.item_indices).where(
                    Chunk.job_id == job_id, Chunk.bucket == bucket, Chunk.outputs.is_not(None)
                )
            ).all()
        after = bucket
        yield from in_blocks(
            merge_in_order([(out, idx) for out, idx in rows if out is not None]),
            STREAM_FLUSH_BYTES,
        )


def retry_windows(
    *,
    session_factory: Callable[[], AbstractContextManager[Session]],
    job_id: str,
    failed: bool = True,
    cancelled: bool = False,
) -> Iterator[list[InputRecord]]:
    """A job's items to run again as (index, custom_id, input), one bucket (a window of
    the job's input order) at a time, each in input order, so a retry holds one window and
    never the job: its failed items (not those that failed validation: their input cannot
    run) and, with `cancelled`, the items of its cancelled chunks (they never ran: a chunk
    stopped mid-way keeps no results)."""
    wanted = [Chunk.failed > 0] if failed else []
    if cancelled:
        wanted.append(Chunk.status == states.C_CANCELLED)
    if not wanted:
        return
    after = -1
    while True:
        with session_factory() as session:  # one short session per bucket
            bucket = session.scalar(
                select(func.min(Chunk.bucket)).where(
                    Chunk.job_id == job_id, Chunk.bucket > after, or_(*wanted)
                )
            )
            if bucket is None:
                return
            rows = session.execute(
                select(Chunk.status, Chunk.inputs, Chunk.outputs).where(
                    Chunk.job_id == job_id, Chunk.bucket == bucket, or_(*wanted)
                )
            ).all()
        after = bucket
        window: list[InputRecord] = []
        for status, inputs, outputs in rows:
            if cancelled and status == states.C_CANCELLED:
                window += unpack_inputs(inputs)
                continue
            records = {r[0]: r for r in unpack_inputs(inputs)}
            for line in unpack_lines(outputs or b""):
                if is_failure(line):
                    record = records.get(result_index(line))
                    if record is not None:
                        window.append(record)
        if window:
            window.sort(key=lambda r: r[0])
            yield window
