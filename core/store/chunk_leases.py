"""The chunk lease lifecycle: a worker starts a queued chunk under its lease token, extends
the lease while it runs, and completes, abandons or expires it; every move is conditional on
the token, so a duplicate message or a zombie worker changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from core import states
from core.codec import InputRecord, unpack_inputs_with_counts
from core.store.jobs import settle_job_status
from core.store.stored_bytes import add_job_stored_bytes
from core.store.usage import DEFAULT_DEVICE, add_job_usage, chunk_usage
from core.tables import Chunk, Job


@dataclass(frozen=True)
class ChunkWork:
    """What a worker needs to run a chunk it has started."""

    chunk_id: int
    token: str
    job_id: str
    model: str
    task: str
    params: dict[str, Any]
    # An OpenAI batch's endpoint: its inputs are request bodies to it.
    endpoint: str | None = None
    # Which run of the chunk this is (1 the first; more after its workers died).
    attempt: int = 1
    # The compressed input records; decoded on first use, after the starting transaction
    # has committed (decoding thousands of records need not hold the database).
    inputs: bytes = b""
    _decoded: tuple[list[InputRecord], list[int] | None] | None = field(default=None, repr=False)

    def _decode(self) -> tuple[list[InputRecord], list[int] | None]:
        if self._decoded is None:  # a cache on a frozen dataclass
            object.__setattr__(self, "_decoded", unpack_inputs_with_counts(self.inputs))
        assert self._decoded is not None
        return self._decoded

    @property
    def records(self) -> list[InputRecord]:
        """The chunk's (index, custom_id, input) records, in index order."""
        return self._decode()[0]

    @property
    def token_counts(self) -> list[int] | None:
        """The API's token count of every record, when it counted them."""
        return self._decode()[1]


def affected_rows(session: Session, stmt: Update) -> int:
    """Rows a conditional UPDATE changed: 0 means the condition (a lease, a state) failed."""
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def update_chunk_if_held(
    session: Session, chunk_id: int, token: str, status: str, values: dict[str, Any]
) -> bool:
    """Update a chunk only while it is in `status` under lease `token`; whether it was.

    Every move of a leased chunk goes through here: whoever lost the lease (a duplicate
    message, a zombie worker, a sweep or cancel that came first) changes nothing.
    """
    stmt = (
        update(Chunk)
        .where(Chunk.id == chunk_id, Chunk.lease_token == token, Chunk.status == status)
        .values(values)
    )
    return affected_rows(session, stmt) == 1


RELEASED: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}


def start_chunk(
    *, session: Session, chunk_id: int, token: str, worker: str, now: float, lease: float
) -> ChunkWork | None:
    """Take a queued chunk whose lease token matches; None for a stale or duplicate message."""
    row = session.execute(
        select(
            Chunk.job_id,
            Chunk.inputs,
            Chunk.attempts,
            Job.status,
            Job.model,
            Job.task,
            Job.params,
            Job.endpoint,
        )
        .join(Job, Job.id == Chunk.job_id)
        .where(Chunk.id == chunk_id, Chunk.lease_token == token, Chunk.status == states.C_QUEUED)
    ).first()
    if row is None:
        return None
    job_id, inputs, attempts, job_status, model, task, params, endpoint = row
    if job_status not in states.JOB_ACTIVE:
        update_chunk_if_held(
            session,
            chunk_id,
            token,
            states.C_QUEUED,
            {"status": states.C_CANCELLED, "finished_at": now, **RELEASED},
        )
        settle_job_status(session=session, job_id=job_id, now=now)
        return None
    claimed = update_chunk_if_held(
        session,
        chunk_id,
        token,
        states.C_QUEUED,
        {
            "status": states.C_RUNNING,
            "attempts": Chunk.attempts + 1,
            "worker": worker,
            "started_at": now,
            "lease_expires_at": now + lease,
        },
    )
    if not claimed:  # a concurrent start, cancel or sweep got there first
        return None
    if job_status == states.QUEUED:  # its first chunk to start: the job is in progress
        settle_job_status(session=session, job_id=job_id, now=now)
    return ChunkWork(
        chunk_id=chunk_id,
        token=token,
        job_id=job_id,
        model=model,
        task=task,
        params=params or {},
        endpoint=endpoint,
        attempt=attempts + 1,
        inputs=inputs,
    )


def extend_lease(*, session: Session, chunk_id: int, token: str, now: float, lease: float) -> bool:
    """Push a running chunk's lease out; False means the lease was lost (stop working)."""
    return update_chunk_if_held(
        session, chunk_id, token, states.C_RUNNING, {"lease_expires_at": now + lease}
    )


def complete_chunk(
    *,
    session: Session,
    work: ChunkWork,
    outputs: bytes,
    completed: int,
    failed: int,
    now: float,
    compute_seconds: float,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    device: str = DEFAULT_DEVICE,
) -> bool:
    """Record a chunk's results if this worker still holds its lease; count them, their
    token usage and their compute time on `device` (its kind: cpu, cuda, mps) once."""
    recorded = update_chunk_if_held(
        session,
        work.chunk_id,
        work.token,
        states.C_RUNNING,
        {
            "status": states.C_DONE,
            "outputs": outputs,
            "completed": completed,
            "failed": failed,
            "finished_at": now,
            "compute_seconds": compute_seconds,
            **RELEASED,
        },
    )
    if not recorded:
        return False
    session.execute(
        update(Job)
        .where(Job.id == work.job_id)
        .values(
            completed=Job.completed + completed,
            failed=Job.failed + failed,
            prompt_tokens=Job.prompt_tokens + prompt_tokens,
            completion_tokens=Job.completion_tokens + completion_tokens,
            updated_at=now,
        )
    )
    usage = chunk_usage(
        task=work.task,
        completed=completed,
        failed=failed,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        compute_seconds=compute_seconds,
    )
    add_job_usage(session=session, job_id=work.job_id, now=now, delta=usage, device=device)
    add_job_stored_bytes(session=session, job_id=work.job_id, delta=len(outputs))
    settle_job_status(session=session, job_id=work.job_id, now=now)
    return True


def abandon_chunk(*, session: Session, work: ChunkWork, now: float, cancelled: bool) -> bool:
    """Give up a running chunk: cancelled for good, or back to pending (attempt refunded)."""
    values: dict[str, Any] = (
        {"status": states.C_CANCELLED, "finished_at": now, **RELEASED}
        if cancelled
        else {"status": states.C_PENDING, "attempts": Chunk.attempts - 1, **RELEASED}
    )
    moved = update_chunk_if_held(session, work.chunk_id, work.token, states.C_RUNNING, values)
    if moved:
        settle_job_status(session=session, job_id=work.job_id, now=now)
    return moved


def expire_lease(*, session: Session, work: ChunkWork, now: float) -> bool:
    """End a running chunk's lease now; the next sweep retries or fails it by its attempts."""
    return update_chunk_if_held(
        session, work.chunk_id, work.token, states.C_RUNNING, {"lease_expires_at": now}
    )
