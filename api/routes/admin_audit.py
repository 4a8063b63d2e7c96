"""/v1/admin/audit, for admin keys: the audit log of every tenant, newest first, by tenant
or action."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.admin_schemas import AuditList, audit_out
from api.deps import STRICT_QUERY, SessionDep, admin_caller, page_of
from api.json_route import OrjsonRoute
from api.routes.admin_tenants import tenant_or_404
from api.schemas import ERROR_RESPONSES
from core.store.audit import ACTIONS, list_events

router = APIRouter(
    prefix="/v1/admin/audit",
    tags=["admin"],
    responses=ERROR_RESPONSES,
    dependencies=[*STRICT_QUERY, Depends(admin_caller)],
    route_class=OrjsonRoute,
)
LimitQuery = Annotated[int, Query(ge=1, le=100)]
AfterQuery = Annotated[
    int | None,
    Query(ge=0, le=2**63 - 1, description="Cursor: an entry id; older entries follow"),
]
ActionQuery = Annotated[
    Literal[ACTIONS] | None,  # type: ignore[valid-type]
    Query(description="Only entries of this action"),
]


@router.get("", response_model=AuditList, summary="Read the audit log")
def read_log(
    session: SessionDep,
    limit: LimitQuery = 20,
    after: AfterQuery = None,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Only this tenant's (an id or name)")
    ] = None,
    action: ActionQuery = None,
) -> AuditList:
    """Admin actions, uses of revoked or expired keys, and cancels, newest first; pass
    next_cursor as `after` for older ones."""
    tenant_id = tenant_or_404(session, tenant).id if tenant is not None else None
    rows = list_events(
        session=session, limit=limit + 1, tenant_id=tenant_id, action=action, before=after
    )
    page = page_of(rows, limit)
    return AuditList(
        data=[audit_out(e) for e in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1].id if page.has_more and page.rows else None,
    )
