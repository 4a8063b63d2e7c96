"""Reading a job's results: its result lines in input order, and its failed items."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.codec import merge_in_order, unpack_inputs, unpack_lines
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


def failed_items(
    *, session_factory: Callable[[], AbstractContextManager[Session]], job_id: str
) -> list[tuple[str | None, Any]]:
    """(custom_id, input) of a job's failed items, in input order, for a retry. Items that
    failed validation have no runnable input and are left out."""
    out: list[tuple[int, str | None, Any]] = []
    after = -1
    while True:  # chunk by chunk, each read in a short session
        with session_factory() as session:
            row = session.execute(
                select(Chunk.id, Chunk.inputs, Chunk.outputs)
                .where(Chunk.job_id == job_id, Chunk.id > after, Chunk.failed > 0)
                .order_by(Chunk.id)
                .limit(1)
            ).first()
        if row is None:
            break
        after, inputs, outputs = row
        records = {r[0]: r for r in unpack_inputs(inputs)}
        for line in unpack_lines(outputs or b""):
            if is_failure(line):
                index = result_index(line)
                if index in records:
                    out.append(records[index])
    out.sort(key=lambda r: r[0])
    return [(cid, value) for _, cid, value in out]
