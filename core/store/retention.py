"""Retention: jobs (with their chunks and results) and files past their expiry are deleted;
so are audit entries and usage counters older than their retention, a bounded batch a
round."""

from __future__ import annotations

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from core.store.files import expired_files, forget_file
from core.store.stored_bytes import release_sizes, result_sizes
from core.store.usage import usage_day
from core.tables import AuditEvent, Chunk, Job, UsageCounter


def delete_expired_jobs(*, session: Session, now: float, limit: int = 100) -> int:
    """Delete up to `limit` expired jobs and their chunks; return how many."""
    ids = list(
        session.scalars(
            select(Job.id).where(Job.expires_at < now).order_by(Job.expires_at).limit(limit)
        )
    )
    if ids:
        sizes = result_sizes(session=session, where=Chunk.job_id.in_(ids))
        session.execute(delete(Chunk).where(Chunk.job_id.in_(ids)))
        session.execute(delete(Job).where(Job.id.in_(ids)))
        release_sizes(session=session, sizes=sizes)
    return len(ids)


def claim_expired_files(*, session: Session, now: float, limit: int = 100) -> list[tuple[str, str]]:
    """Delete the rows of expired files (their parts in the database go with them) and
    return (id, storage) so the caller removes bytes kept elsewhere."""
    out = expired_files(session=session, now=now, limit=limit)
    for file_id, _ in out:
        forget_file(session=session, file_id=file_id)
    return out


def delete_old_audit_events(*, session: Session, before: float, limit: int = 1000) -> int:
    """Delete up to `limit` audit entries made before `before`, oldest first; return how
    many. Entries are made in time order, so the oldest ids are the old ones: a round
    reads at most `limit` rows, and one row when none is old enough."""
    oldest = session.scalar(select(AuditEvent.at).order_by(AuditEvent.id).limit(1))
    if oldest is None or oldest >= before:
        return 0
    rows = session.execute(
        select(AuditEvent.id, AuditEvent.at).order_by(AuditEvent.id).limit(limit)
    ).all()
    ids = [row.id for row in rows if row.at < before]
    session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
    return len(ids)


def delete_old_usage(*, session: Session, before: float, limit: int = 1000) -> int:
    """Delete up to `limit` usage counters of UTC days before the day of `before`; return
    how many."""
    cutoff = usage_day(before)
    c = UsageCounter
    keys = session.execute(
        select(c.tenant_id, c.day, c.model, c.job_id, c.device).where(c.day < cutoff).limit(limit)
    ).all()
    if keys:
        session.execute(
            delete(c).where(
                tuple_(c.tenant_id, c.day, c.model, c.job_id, c.device).in_(
                    [tuple(k) for k in keys]
                )
            )
        )
    return len(keys)
