"""Chunk leases: fair dispatch, start, extend, conditional completion, and the sweep."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, Update, exists, func, select, text, update
from sqlalchemy.orm import Session

from core import states
from core.codec import (
    InputRecord,
    error_line,
    pack_lines,
    unpack_inputs,
    unpack_inputs_with_counts,
)
from core.ids import new_token
from core.store.isolation import others_succeeded, split_chunk
from core.store.jobs import finish_job_if_done
from core.tables import Chunk, Job, Tenant


@dataclass(frozen=True)
class Dispatched:
    """A chunk moved to queued, with the lease token its message must carry."""

    chunk_id: int
    token: str
    model: str


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


def _affected(session: Session, stmt: Update) -> int:
    """Rows a conditional UPDATE changed: 0 means the condition (a lease, a state) failed."""
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def queued_count(*, session: Session, model: str) -> int:
    """Chunks of a model sent to the broker and not yet started."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Chunk)
            .where(Chunk.model == model, Chunk.status == states.C_QUEUED)
        )
        or 0
    )


def recent_chunk_seconds(*, session: Session, model: str, sample: int = 20) -> float:
    """Mean compute time of the model's last finished chunks (0 before any finishes)."""
    recent = (
        select(Chunk.compute_seconds)
        .where(
            Chunk.model == model, Chunk.status == states.C_DONE, Chunk.compute_seconds.is_not(None)
        )
        .order_by(Chunk.id.desc())
        .limit(sample)
        .subquery()
    )
    return float(session.scalar(select(func.avg(recent.c.compute_seconds))) or 0.0)


def item_seconds(*, session: Session, model: str, sample: int = 20) -> float | None:
    """Compute seconds per item of the model's last finished chunks (None before any)."""
    recent = (
        select(Chunk.compute_seconds, Chunk.n_items)
        .where(
            Chunk.model == model,
            Chunk.status == states.C_DONE,
            Chunk.compute_seconds.is_not(None),
            Chunk.n_items > 0,
        )
        .order_by(Chunk.id.desc())
        .limit(sample)
        .subquery()
    )
    seconds, items = session.execute(
        select(func.sum(recent.c.compute_seconds), func.sum(recent.c.n_items))
    ).one()
    return float(seconds) / int(items) if seconds and items else None


def _next_job(session: Session, model: str) -> tuple[str, str] | None:
    """The job to serve next: highest priority, then the least recently served tenant,
    then that tenant's least recently served job (round-robin at both levels)."""
    has_pending = exists().where(Chunk.job_id == Job.id, Chunk.status == states.C_PENDING)
    row = session.execute(
        select(Job.id, Job.tenant_id)
        .join(Tenant, Tenant.id == Job.tenant_id)
        .where(Job.model == model, Job.status.in_(states.JOB_ACTIVE), has_pending)
        .order_by(
            Job.priority.desc(),
            func.coalesce(Tenant.last_dispatched_at, 0.0),
            func.coalesce(Job.last_dispatched_at, 0.0),
            Job.id,
        )
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def lock_dispatch(*, session: Session, model: str) -> None:
    """Make dispatchers of one model take turns until commit (PostgreSQL; re-entrant).

    SQLite needs nothing: its writing transactions are serial already.
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(model.encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def dispatch_chunks(
    *, session: Session, model: str, limit: int, now: float, queue_lease: float
) -> list[Dispatched]:
    """Move up to `limit` pending chunks of a model to queued, one fair choice at a time.

    Lock order is job, tenant, then chunk (as in cancel_job), and on PostgreSQL dispatchers
    of one model take turns (an advisory lock until commit), so they cannot deadlock.
    """
    lock_dispatch(session=session, model=model)
    out: list[Dispatched] = []
    tick = now
    # Bounded: a dispatcher that keeps losing races to another one gives up for this round.
    for _ in range(4 * limit):
        if len(out) >= limit:
            break
        picked = _next_job(session, model)
        if picked is None:
            break
        job_id, tenant_id = picked
        tick += 1e-6  # strictly increasing, so round-robin order holds within one call
        session.execute(update(Job).where(Job.id == job_id).values(last_dispatched_at=tick))
        session.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(last_dispatched_at=tick)
        )
        chunk_id = session.scalar(
            select(Chunk.id)
            .where(Chunk.job_id == job_id, Chunk.status == states.C_PENDING)
            .order_by(Chunk.seq)
            .limit(1)
        )
        token = new_token()
        moved = _affected(
            session,
            update(Chunk)
            .where(Chunk.id == chunk_id, Chunk.status == states.C_PENDING)
            .values(status=states.C_QUEUED, lease_token=token, lease_expires_at=now + queue_lease),
        )
        if moved == 1 and chunk_id is not None:
            out.append(Dispatched(chunk_id=chunk_id, token=token, model=model))
    return out


def _if_held(
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
    return _affected(session, stmt) == 1


RELEASED: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}


def requeue_undelivered(*, session: Session, chunk_id: int, token: str) -> bool:
    """Put a queued chunk whose message could not be sent back to pending."""
    return _if_held(
        session, chunk_id, token, states.C_QUEUED, {"status": states.C_PENDING, **RELEASED}
    )


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
        _if_held(
            session,
            chunk_id,
            token,
            states.C_QUEUED,
            {"status": states.C_CANCELLED, "finished_at": now, **RELEASED},
        )
        finish_job_if_done(session=session, job_id=job_id, now=now)
        return None
    claimed = _if_held(
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
        finish_job_if_done(session=session, job_id=job_id, now=now)
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
    return _if_held(session, chunk_id, token, states.C_RUNNING, {"lease_expires_at": now + lease})


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
) -> bool:
    """Record a chunk's results if this worker still holds its lease; count them (and
    their token usage) once."""
    recorded = _if_held(
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
    finish_job_if_done(session=session, job_id=work.job_id, now=now)
    return True


def abandon_chunk(*, session: Session, work: ChunkWork, now: float, cancelled: bool) -> bool:
    """Give up a running chunk: cancelled for good, or back to pending (attempt refunded)."""
    values: dict[str, Any] = (
        {"status": states.C_CANCELLED, "finished_at": now, **RELEASED}
        if cancelled
        else {"status": states.C_PENDING, "attempts": Chunk.attempts - 1, **RELEASED}
    )
    moved = _if_held(session, work.chunk_id, work.token, states.C_RUNNING, values)
    if moved:
        finish_job_if_done(session=session, job_id=work.job_id, now=now)
    return moved


def expire_lease(*, session: Session, work: ChunkWork, now: float) -> bool:
    """End a running chunk's lease now; the next sweep retries or fails it by its attempts."""
    return _if_held(session, work.chunk_id, work.token, states.C_RUNNING, {"lease_expires_at": now})


def _still_expired(chunk: Chunk, now: float) -> Any:
    """The condition that the chunk is as the sweep read it: same lease, status, lapsed."""
    return (
        (Chunk.id == chunk.id)
        & (Chunk.lease_token == chunk.lease_token)
        & (Chunk.status == chunk.status)
        & (Chunk.lease_expires_at < now)
    )


def _fail_chunk(session: Session, chunk: Chunk, now: float) -> bool:
    """Fail every item of a chunk that ran out of attempts; count them once."""
    records = unpack_inputs(chunk.inputs)
    message = f"the chunk holding this item failed {chunk.attempts} times (worker lost)"
    lines = (error_line(i, cid, "attempts_exhausted", message) for i, cid, _ in records)
    failed = _affected(
        session,
        update(Chunk)
        .where(_still_expired(chunk, now))
        .values(
            status=states.C_FAILED,
            outputs=pack_lines(lines),
            completed=0,
            failed=len(records),
            lease_token=None,
            lease_expires_at=None,
            finished_at=now,
        ),
    )
    if failed != 1:
        return False
    session.execute(
        update(Job)
        .where(Job.id == chunk.job_id)
        .values(failed=Job.failed + len(records), updated_at=now)
    )
    return True


SPLIT = "split"


def sweep_expired(
    *,
    session: Session,
    now: float,
    max_attempts: int,
    limit: int = 500,
    isolation_horizon: float = 600.0,
) -> dict[str, int]:
    """Return chunks with lapsed leases to pending (or fail, split or cancel them); finish
    their jobs. A chunk out of attempts is split (core.store.isolation) when other chunks
    of its model succeeded within isolation_horizon seconds, else failed."""
    expired = list(
        session.execute(
            select(Chunk, Job.status)
            .join(Job, Job.id == Chunk.job_id)
            .where(Chunk.status.in_(states.CHUNK_LEASED), Chunk.lease_expires_at < now)
            .limit(limit)
        )
    )
    moved = {states.C_PENDING: 0, states.C_FAILED: 0, states.C_CANCELLED: 0}
    touched: set[str] = set()
    for chunk, job_status in expired:
        target = states.expired_lease_target(
            status=chunk.status,
            attempts=chunk.attempts,
            max_attempts=max_attempts,
            job_cancelling=job_status not in states.JOB_ACTIVE,
        )
        if (
            target == states.C_FAILED
            and chunk.n_items > 1
            and others_succeeded(session, chunk, since=now - isolation_horizon)
        ):
            # Its worker keeps dying while others succeed: an input may be the killer.
            changed = split_chunk(session, chunk, _still_expired, now, max_attempts - 1)
            target = SPLIT
        elif target == states.C_FAILED:
            changed = _fail_chunk(session, chunk, now)
        else:
            values: dict[str, Any] = {
                "status": target,
                "lease_token": None,
                "lease_expires_at": None,
            }
            if target == states.C_CANCELLED:
                values["finished_at"] = now
            # A worker may have started, extended or finished it since the read above.
            changed = (
                _affected(session, update(Chunk).where(_still_expired(chunk, now)).values(values))
                == 1
            )
        if changed:
            moved[target] = moved.get(target, 0) + 1
            touched.add(chunk.job_id)
    # Safety net: a cancelling job whose last chunk ended without finishing it.
    touched.update(session.scalars(select(Job.id).where(Job.status == states.CANCELLING)))
    for job_id in touched:
        finish_job_if_done(session=session, job_id=job_id, now=now)
    return moved
