"""Files: their rows (the bytes are in core.blobs), lookup, listing, deletion, expiry."""

from __future__ import annotations

import time
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ids import new_id
from core.store.stored_bytes import add_stored_bytes
from core.tables import File

UPLOADING = "uploading"
PROCESSED = "processed"
# An upload that has not finished after this long was cut off (the API process died).
STALE_UPLOAD_SECONDS = 6 * 3600.0


def start_file(
    *, session: Session, tenant_id: str, filename: str, purpose: str, storage: str
) -> File:
    """The row of an upload that is starting (status uploading, until finish_file)."""
    now = time.time()
    row = File(
        id=new_id("file"),
        tenant_id=tenant_id,
        filename=filename[:255],
        purpose=purpose,
        status=UPLOADING,
        storage=storage,
        bytes=0,
        lines=0,
        sha256=None,
        created_at=now,
        expires_at=now + STALE_UPLOAD_SECONDS,
    )
    session.add(row)
    session.flush()
    return row


class WrittenFile(Protocol):
    """What was written of a file: its bytes, its lines and their running sha256."""

    size: int
    lines: int
    digest: Any


def finish_file(
    *,
    session: Session,
    file_id: str,
    purpose: str,
    written: WrittenFile,
    expires_after_seconds: float,
) -> File | None:
    """Mark an upload complete, with its size, line count, digest and expiry."""
    row = session.get(File, file_id)
    if row is None:
        return None
    row.purpose, row.status = purpose, PROCESSED
    row.bytes, row.lines, row.sha256 = written.size, written.lines, written.digest.hexdigest()
    row.expires_at = row.created_at + expires_after_seconds
    session.flush()
    add_stored_bytes(session=session, tenant_id=row.tenant_id, delta=row.bytes)
    return row


def get_file(*, session: Session, tenant_id: str, file_id: str) -> File | None:
    """The tenant's finished file, or None (another tenant's is not found either)."""
    return session.scalar(
        select(File).where(
            File.id == file_id, File.tenant_id == tenant_id, File.status == PROCESSED
        )
    )


def list_files(
    *,
    session: Session,
    tenant_id: str,
    limit: int,
    after: str | None = None,
    purpose: str | None = None,
) -> list[File]:
    """The tenant's files, newest first, starting after the cursor file id."""
    q = select(File).where(File.tenant_id == tenant_id, File.status == PROCESSED)
    if after:
        q = q.where(File.id < after)
    if purpose:
        q = q.where(File.purpose == purpose)
    return list(session.scalars(q.order_by(File.id.desc()).limit(limit)))


def forget_file(*, session: Session, file_id: str) -> File | None:
    """Delete a file's row (its parts in the database go with it); return what it was."""
    row = session.get(File, file_id)
    if row is not None:
        session.delete(row)
        session.flush()
        if row.status == PROCESSED:  # an unfinished upload was never counted
            add_stored_bytes(session=session, tenant_id=row.tenant_id, delta=-row.bytes)
    return row


def expired_files(*, session: Session, now: float, limit: int = 100) -> list[tuple[str, str]]:
    """(id, storage) of files past their expiry, stale uploads included."""
    rows = session.execute(
        select(File.id, File.storage)
        .where(File.expires_at < now)
        .order_by(File.expires_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]
