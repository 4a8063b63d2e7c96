"""Each tenant's stored bytes as a counter (tenant_usage): finished files (as uploaded or
written) plus its jobs' result blobs (as stored, compressed). Whatever writes or deletes
them moves the counter in the same transaction, so a quota check reads one row, never a
scan.

Lock order: the counter's row is always taken last (after the chunk, job or file rows a
transaction changes), or first and alone (a submission's quota check), so it cannot
deadlock with the dispatcher or a finishing chunk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.tables import Chunk, File, Job, TenantUsage


def add_stored_bytes(*, session: Session, tenant_id: str, delta: int) -> None:
    """Move a tenant's counter by delta bytes (its row made if it has none yet)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(TenantUsage).values(tenant_id=tenant_id, stored_bytes=delta)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TenantUsage.tenant_id],
            set_={"stored_bytes": TenantUsage.stored_bytes + stmt.excluded.stored_bytes},
        )
    )


def stored_bytes(*, session: Session, tenant_id: str, lock: bool = False) -> int:
    """A tenant's counter; with lock, its row is held until commit (the row is made first,
    so there is one to hold)."""
    if lock:
        add_stored_bytes(session=session, tenant_id=tenant_id, delta=0)
    q = select(TenantUsage.stored_bytes).where(TenantUsage.tenant_id == tenant_id)
    return int(session.scalar(q.with_for_update() if lock else q) or 0)


def add_job_stored_bytes(*, session: Session, job_id: str, delta: int) -> None:
    """Move the counter of a job's tenant by delta bytes (results written for the job)."""
    if delta:
        tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if tenant_id is not None:
            add_stored_bytes(session=session, tenant_id=tenant_id, delta=delta)


def results_size(rows: list[dict[str, Any]]) -> int:
    """Bytes of the result blobs in chunk rows about to be inserted."""
    return sum(len(row["outputs"]) for row in rows if row.get("outputs") is not None)


def result_sizes(*, session: Session, where: Any) -> dict[str, int]:
    """Bytes of result blobs per tenant in the chunks matching `where`: read before they
    are deleted, released (release_sizes) after."""
    rows = session.execute(
        select(Job.tenant_id, func.sum(func.length(Chunk.outputs)))
        .join(Job, Job.id == Chunk.job_id)
        .where(where, Chunk.outputs.is_not(None))
        .group_by(Job.tenant_id)
    )
    return {tenant_id: int(size or 0) for tenant_id, size in rows}


def release_sizes(*, session: Session, sizes: dict[str, int]) -> None:
    """Take deleted result blobs (result_sizes) off their tenants' counters."""
    for tenant_id, size in sizes.items():
        if size:
            add_stored_bytes(session=session, tenant_id=tenant_id, delta=-size)


def recount_stored_bytes(*, session: Session, tenant_id: str) -> int:
    """What the counter should say, by scanning (for tests and repairs, never per request)."""
    files = session.scalar(
        select(func.coalesce(func.sum(File.bytes), 0)).where(
            File.tenant_id == tenant_id,
            File.status == "processed",  # core.store.files.PROCESSED
        )
    )
    results = session.scalar(
        select(func.coalesce(func.sum(func.length(Chunk.outputs)), 0))
        .join(Job, Job.id == Chunk.job_id)
        .where(Job.tenant_id == tenant_id, Chunk.outputs.is_not(None))
    )
    return int(files or 0) + int(results or 0)
