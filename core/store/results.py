"""Reading a job's results: its result lines in input order, and the items a retry runs
again (failed, or never run because the job was cancelled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import states
from core.codec import merge_in_order, unpack_inputs, unpack_lines
from core.errors import TooLarge
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


def retry_items(
    *,
    session_factory: Callable[[], AbstractContextManager[Session]],
    job_id: str,
    failed: bool = True,
    cancelled: bool = False,
    limit: int | None = None,
) -> list[tuple[str | None, Any]]:
    """(custom_id, input) of a job's items to run again, in input order: its failed items
    (not those that failed validation: their input cannot run) and, with `cancelled`, the
    items of its cancelled chunks (they never ran: a chunk stopped mid-way keeps no
    results). TooLarge once there are more than `limit`, before more is read."""
    wanted = [Chunk.failed > 0] if failed else []
    if cancelled:
        wanted.append(Chunk.status == states.C_CANCELLED)
    if not wanted:
        return []
    out: list[tuple[int, str | None, Any]] = []
    after = -1
    while True:  # chunk by chunk, each read in a short session
        with session_factory() as session:
            row = session.execute(
                select(Chunk.id, Chunk.status, Chunk.inputs, Chunk.outputs)
                .where(Chunk.job_id == job_id, Chunk.id > after, or_(*wanted))
                .order_by(Chunk.id)
                .limit(1)
            ).first()
        if row is None:
            break
        after, status, inputs, outputs = row
        if cancelled and status == states.C_CANCELLED:
            out += unpack_inputs(inputs)
        else:
            records = {r[0]: r for r in unpack_inputs(inputs)}
            for line in unpack_lines(outputs or b""):
                if is_failure(line):
                    index = result_index(line)
                    if index in records:
                        out.append(records[index])
        if limit is not None and len(out) > limit:
            raise TooLarge(
                f"more than {limit} items to retry, the most a job holds "
                "(SLUICE_MAX_INPUTS_PER_JOB); download them (`only=failed`) and submit "
                "them as a file",
                code="too_many_inputs",
            )
    out.sort(key=lambda r: r[0])
    return [(cid, value) for _, cid, value in out]
