"""Reading an ended message batch's results in request order: each job's requests are
read one bucket of chunks at a time (bounded memory), and the batch's per-request job
positions interleave them back into the order they were sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import states
from core.anthropic_message_output import render_message_result, render_unrun
from core.codec import decompress, unpack_inputs, unpack_lines
from core.result_lines import parse_result_line
from core.tables import Chunk, Job, MessageBatch

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Request:
    """One request of a job as stored, with its native result line (None: never ran)."""

    index: int
    custom_id: str | None
    body: dict[str, Any]
    result: dict[str, Any] | None


def job_requests(*, session_factory: SessionFactory, job_id: str) -> Iterator[Request]:
    """A job's requests in input order, one bucket of chunks per short session."""
    after = -1
    while True:
        with session_factory() as session:
            bucket = session.scalar(
                select(func.min(Chunk.bucket)).where(Chunk.job_id == job_id, Chunk.bucket > after)
            )
            if bucket is None:
                return
            rows = session.execute(
                select(Chunk.inputs, Chunk.outputs).where(
                    Chunk.job_id == job_id, Chunk.bucket == bucket
                )
            ).all()
        after = bucket
        found: list[Request] = []
        for inputs, outputs in rows:
            results = {}
            for raw in unpack_lines(outputs) if outputs is not None else ():
                result = parse_result_line(raw)
                results[result["index"]] = result
            for index, custom_id, body in unpack_inputs(inputs):
                found.append(Request(index, custom_id, body, results.get(index)))
        found.sort(key=lambda r: r.index)
        yield from found


def stream_message_results(
    *, session_factory: SessionFactory, batch: MessageBatch, jobs: list[Job]
) -> Iterator[bytes]:
    """The batch's result lines (each ending in a newline), in request order."""
    readers = [job_requests(session_factory=session_factory, job_id=j.id) for j in jobs]
    unrun_as = [states.EXPIRED if j.finish_as == states.EXPIRED else states.CANCELLED for j in jobs]
    for position, ordinal in enumerate(decompress(batch.request_jobs)):
        request = next(readers[ordinal])
        if request.result is None:
            line = render_unrun(custom_id=request.custom_id, ends_as=unrun_as[ordinal])
        else:
            line = render_message_result(
                batch_id=batch.id,
                position=position,
                model=jobs[ordinal].model,
                body=request.body,
                result=request.result,
            )
        yield line + b"\n"
