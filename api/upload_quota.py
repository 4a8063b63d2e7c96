"""An upload's quotas, checked before its body is read: the tenant's uploads per minute, and
its stored bytes against what the request declares (the exact size is checked again when
the upload finishes, in the transaction that counts it)."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from core.db import read_session
from core.store.quotas import check_upload_room, tenant_quotas
from core.submit.rate import check_rate

# Room for the multipart envelope around the file (boundaries, part headers, the purpose
# field): a declared length beyond the quota by more than this cannot fit.
ENVELOPE_BYTES = 64 << 10


def declared_file_bytes(request: Request) -> int:
    """The least the file can weigh, by the request's Content-Length (0 when unknown)."""
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0
    return max(0, declared - ENVELOPE_BYTES)


def _admit(request: Request, tenant_id: str) -> None:
    state = request.app.state
    cfg = state.settings
    with read_session(cfg.database_url) as session:
        check_upload_room(
            session=session, tenant_id=tenant_id, cfg=cfg, size=declared_file_bytes(request)
        )
        limits = tenant_quotas(session=session, tenant_id=tenant_id, cfg=cfg)
    check_rate(
        state.redis,
        prefix=cfg.redis_prefix,
        tenant_id=tenant_id,
        per_minute=limits.uploads_per_minute,
        quota="uploads_per_minute",
    )


async def admit_upload(request: Request, tenant_id: str) -> None:
    """QuotaExceeded (429 quota_exceeded) for an upload over the tenant's stored bytes or
    uploads per minute, before a byte of its body is read."""
    await run_in_threadpool(_admit, request, tenant_id)
