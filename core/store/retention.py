"""Retention: jobs (with their chunks and results) and files past their expiry are deleted."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.store.files import expired_files, forget_file
from core.store.stored_bytes import release_sizes, result_sizes
from core.tables import Chunk, Job


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
