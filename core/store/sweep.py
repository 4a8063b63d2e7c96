"""The sweep: chunks whose leases lapsed go back to pending, or are failed, split
(core.store.isolation) or cancelled by their attempts and their job's status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import states
from core.codec import pack_lines, unpack_inputs
from core.result_lines import error_line
from core.store.chunk_leases import affected_rows
from core.store.isolation import others_succeeded, split_chunk
from core.store.jobs import settle_job_status
from core.store.stored_bytes import add_job_stored_bytes
from core.store.usage import UsageDelta, add_job_usage
from core.tables import Chunk, Job


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
    outputs = pack_lines(error_line(i, cid, "attempts_exhausted", message) for i, cid, _ in records)
    failed = affected_rows(
        session,
        update(Chunk)
        .where(_still_expired(chunk, now))
        .values(
            status=states.C_FAILED,
            outputs=outputs,
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
    add_job_usage(
        session=session, job_id=chunk.job_id, now=now, delta=UsageDelta(failed_items=len(records))
    )
    add_job_stored_bytes(session=session, job_id=chunk.job_id, delta=len(outputs))
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
                affected_rows(
                    session, update(Chunk).where(_still_expired(chunk, now)).values(values)
                )
                == 1
            )
        if changed:
            moved[target] = moved.get(target, 0) + 1
            touched.add(chunk.job_id)
    # Safety net: a cancelling job whose last chunk ended without finishing it.
    touched.update(session.scalars(select(Job.id).where(Job.status == states.CANCELLING)))
    for job_id in touched:
        settle_job_status(session=session, job_id=job_id, now=now)
    return moved
