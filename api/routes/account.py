"""A tenant's own view of its keys, its quotas and the audit entries about it (any key
with the `read` scope); another tenant's never show."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.admin_schemas import AuditList, KeyList, audit_out, key_out
from api.deps import STRICT_QUERY, SessionDep, TenantDep, page_of
from api.json_route import OrjsonRoute
from api.quota_report import QuotaList, quota_report
from api.routes.admin_audit import ActionQuery, AfterQuery, LimitQuery
from api.schemas import ERROR_RESPONSES
from core.store.api_keys import list_keys
from core.store.audit import list_events
from core.tables import Tenant

router = APIRouter(
    prefix="/v1",
    tags=["account"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)


@router.get("/keys", response_model=KeyList, summary="List your tenant's keys")
def my_keys(
    tenant: TenantDep,
    session: SessionDep,
    limit: LimitQuery = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a key id")] = None,
) -> KeyList:
    """Your tenant's keys, newest first (prefix, scopes, created, last used, expiry,
    status), never their secrets."""
    rows = list_keys(session=session, limit=limit + 1, tenant_id=tenant.id, before=after)
    page = page_of(rows, limit)
    now = time.time()
    return KeyList(
        data=[key_out(key, name, now) for key, name in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1][0].id if page.has_more and page.rows else None,
    )


@router.get("/quotas", response_model=QuotaList, summary="Your tenant's quotas and use")
def my_quotas(tenant: TenantDep, session: SessionDep, request: Request) -> QuotaList:
    """Each quota's limit in force, whether it is your tenant's own, and your use now."""
    row = session.get(Tenant, tenant.id)  # read now: the key's copy may be 10 s old
    return quota_report(request, session, row or tenant)


@router.get("/audit", response_model=AuditList, summary="Your tenant's audit entries")
def my_audit(
    tenant: TenantDep,
    session: SessionDep,
    limit: LimitQuery = 20,
    after: AfterQuery = None,
    action: ActionQuery = None,
) -> AuditList:
    """What was done to your tenant, its keys and its jobs (cancels, key changes, uses of
    revoked or expired keys), newest first; an operator's key shows as `admin`."""
    rows = list_events(
        session=session, limit=limit + 1, tenant_id=tenant.id, action=action, before=after
    )
    page = page_of(rows, limit)
    return AuditList(
        data=[audit_out(e, viewer_tenant_id=tenant.id) for e in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1].id if page.has_more and page.rows else None,
    )
