"""What a tenant may use and uses now, quota by quota: for the tenant itself (GET /v1/quotas)
and for admins (GET /v1/admin/tenants/{tenant}/quotas)."""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from core.store.quotas import job_usage, quotas_for
from core.store.stored_bytes import stored_bytes
from core.store.tenant_admin import QUOTA_KINDS, quotas_of
from core.submit.rate import current_rate
from core.tables import Tenant


class QuotaOut(BaseModel):
    """One quota: its limit in force, whether the tenant has its own, and the use now."""

    quota: str
    limit: int = Field(description="In force (0 allows none)")
    overridden: bool = Field(description="The tenant's own limit, not the default")
    current: int | None = Field(description="Use now (this minute's, for rates); null: unknown")


class QuotaList(BaseModel):
    """A tenant's quotas."""

    object: Literal["list"] = "list"
    tenant_id: str
    data: list[QuotaOut]


def quota_report(request: Request, session: Session, tenant: Tenant) -> QuotaList:
    """The tenant's quotas, limits and use, read now."""
    state = request.app.state
    cfg = state.settings
    limits = quotas_for(tenant, cfg)
    queued, unfinished = job_usage(session=session, tenant_id=tenant.id)
    current: dict[str, int | None] = {
        "queued_items": queued,
        "concurrent_jobs": unfinished,
        "stored_bytes": stored_bytes(session=session, tenant_id=tenant.id),
    }
    for rate in ("uploads_per_minute", "submissions_per_minute"):
        current[rate] = current_rate(
            state.redis, prefix=cfg.redis_prefix, tenant_id=tenant.id, quota=rate
        )
    overrides = quotas_of(tenant)
    return QuotaList(
        tenant_id=tenant.id,
        data=[
            QuotaOut(
                quota=kind,
                limit=getattr(limits, kind),
                overridden=overrides[kind] is not None,
                current=current[kind],
            )
            for kind in QUOTA_KINDS
        ],
    )
