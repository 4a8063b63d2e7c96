"""Dispatch: choosing which pending chunks to queue next (priority, then the tenant whose
weighted fair share is due first, then its least recently served job: core.fair_share) and
moving them to queued under a fresh lease token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, select, text, update
from sqlalchemy.orm import Session

from core import states
from core.fair_share import Candidate, Choice, settle
from core.ids import new_token
from core.store.chunk_leases import RELEASED, affected_rows, update_chunk_if_held
from core.tables import Chunk, DispatchClock, FairShare, Job, Tenant


@dataclass(frozen=True)
class Dispatched:
    """A chunk moved to queued, with the lease token its message must carry."""

    chunk_id: int
    token: str
    model: str


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


def _next_job(session: Session, model: str, clock: float) -> Choice | None:
    """The next dispatch, as core.fair_share.choose picks it (highest priority, then the
    tenant whose turn is due first, then its least recently served job), in one query. A
    disabled tenant's jobs wait, their chunks pending, until it is enabled again."""
    has_pending = exists().where(Chunk.job_id == Job.id, Chunk.status == states.C_PENDING)
    due = case((func.coalesce(FairShare.tag, clock) > clock, FairShare.tag), else_=clock)
    row = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.priority,
            Tenant.weight,
            FairShare.tag,
            Job.last_dispatched_at,
            func.min(due).over(),
        )
        .join(Tenant, Tenant.id == Job.tenant_id)
        .outerjoin(FairShare, and_(FairShare.model == model, FairShare.tenant_id == Job.tenant_id))
        .where(
            Job.model == model,
            Job.status.in_(states.JOB_ACTIVE),
            Tenant.disabled_at.is_(None),
            has_pending,
        )
        .order_by(
            Job.priority.desc(),
            due,
            func.coalesce(Job.last_dispatched_at, 0.0),
            Job.id,
        )
        .limit(1)
    ).first()
    if row is None:
        return None
    return settle(Candidate(*row[:6]), clock, row[6])


def _read_clock(session: Session, model: str) -> float:
    return session.scalar(select(DispatchClock.clock).where(DispatchClock.model == model)) or 0.0


def _write_clock(session: Session, model: str, clock: float) -> None:
    moved = affected_rows(
        session,
        update(DispatchClock).where(DispatchClock.model == model).values(clock=clock),
    )
    if moved == 0:
        session.add(DispatchClock(model=model, clock=clock))
        session.flush()


def _write_tag(session: Session, model: str, choice: Choice) -> None:
    tenant_id = choice.candidate.tenant_id
    if choice.candidate.tag is None:
        session.add(FairShare(model=model, tenant_id=tenant_id, tag=choice.tag))
        session.flush()
        return
    session.execute(
        update(FairShare)
        .where(FairShare.model == model, FairShare.tenant_id == tenant_id)
        .values(tag=choice.tag)
    )


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

    Lock order is fair share, job, then chunk, and on PostgreSQL dispatchers of one model
    take turns (an advisory lock until commit; fair shares and clocks are per model), so
    they cannot deadlock.
    """
    lock_dispatch(session=session, model=model)
    out: list[Dispatched] = []
    tick = now
    clock = _read_clock(session, model)
    # Bounded: a dispatcher that keeps losing races to another one gives up for this round.
    for _ in range(4 * limit):
        if len(out) >= limit:
            break
        choice = _next_job(session, model, clock)
        if choice is None:
            break
        job_id = choice.candidate.job_id
        clock = choice.clock
        _write_tag(session, model, choice)
        tick += 1e-6  # strictly increasing, so round-robin order holds within one call
        session.execute(update(Job).where(Job.id == job_id).values(last_dispatched_at=tick))
        chunk_id = session.scalar(
            select(Chunk.id)
            .where(Chunk.job_id == job_id, Chunk.status == states.C_PENDING)
            .order_by(Chunk.seq)
            .limit(1)
        )
        token = new_token()
        moved = affected_rows(
            session,
            update(Chunk)
            .where(Chunk.id == chunk_id, Chunk.status == states.C_PENDING)
            .values(status=states.C_QUEUED, lease_token=token, lease_expires_at=now + queue_lease),
        )
        if moved == 1 and chunk_id is not None:
            out.append(Dispatched(chunk_id=chunk_id, token=token, model=model))
    if out:
        _write_clock(session, model, clock)
    return out


def requeue_undelivered(*, session: Session, chunk_id: int, token: str) -> bool:
    """Put a queued chunk whose message could not be sent back to pending."""
    return update_chunk_if_held(
        session, chunk_id, token, states.C_QUEUED, {"status": states.C_PENDING, **RELEASED}
    )
