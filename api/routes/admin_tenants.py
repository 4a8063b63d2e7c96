"""/v1/admin/tenants, for admin keys: create, list, read, update (weight and quota
overrides), disable and enable tenants."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from api.admin_schemas import TenantCreate, TenantList, TenantOut, TenantUpdate, tenant_out
from api.deps import STRICT_QUERY, AdminDep, SessionDep, admin_caller, found, page_of
from api.json_route import OrjsonRoute
from api.quota_report import QuotaList, quota_report
from api.schemas import ERROR_RESPONSES
from core.db import write_session
from core.errors import Conflict
from core.store.audit import Actor
from core.store.tenant_admin import (
    create_tenant,
    list_tenants,
    set_tenant_disabled,
    update_tenant,
)
from core.store.tenants import Caller, KeyRefusal, tenant_named
from core.tables import Tenant

router = APIRouter(
    prefix="/v1/admin/tenants",
    tags=["admin"],
    responses=ERROR_RESPONSES,
    dependencies=[*STRICT_QUERY, Depends(admin_caller)],
    route_class=OrjsonRoute,
)
TenantPath = Annotated[str, Path(max_length=200, description="A tenant's id or name")]


def actor_of(caller: Caller) -> Actor:
    """The audit log's record of who called."""
    return Actor(name=caller.key_id, tenant_id=caller.tenant.id)


def tenant_or_404(session: Session, tenant: str) -> Tenant:
    """The tenant with that id or name, or NotFound."""
    return found(
        tenant_named(session=session, id_or_name=tenant), f"no tenant {tenant!r}", param="tenant"
    )


@router.post("", status_code=201, response_model=TenantOut, summary="Create a tenant")
def create(body: TenantCreate, caller: AdminDep, request: Request) -> TenantOut:
    """A new tenant (409 tenant_exists if the name is taken); give it keys with
    POST /v1/admin/keys."""
    quotas = body.quotas.model_dump(exclude_unset=True) if body.quotas else None
    with write_session(request.app.state.settings.database_url) as session:
        tenant = create_tenant(
            session=session,
            name=body.name,
            weight=body.weight,
            quotas=quotas,
            actor=actor_of(caller),
            now=time.time(),
        )
    return tenant_out(tenant)


@router.get("", response_model=TenantList, summary="List tenants by name")
def list_all(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=200, description="Cursor: a name")] = None,
) -> TenantList:
    """One page of tenants, by name; pass next_cursor as `after` for the next."""
    page = page_of(list_tenants(session=session, limit=limit + 1, after=after), limit)
    return TenantList(
        data=[tenant_out(t) for t in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1].name if page.has_more and page.rows else None,
    )


@router.get("/{tenant}", response_model=TenantOut, summary="Get a tenant")
def get_one(tenant: TenantPath, session: SessionDep) -> TenantOut:
    """A tenant by id or name."""
    return tenant_out(tenant_or_404(session, tenant))


@router.get("/{tenant}/quotas", response_model=QuotaList, summary="A tenant's quotas and use")
def quotas(tenant: TenantPath, session: SessionDep, request: Request) -> QuotaList:
    """Each quota's limit in force, whether it is the tenant's own, and its use now."""
    return quota_report(request, session, tenant_or_404(session, tenant))


@router.patch("/{tenant}", response_model=TenantOut, summary="Update a tenant")
def update(tenant: TenantPath, body: TenantUpdate, caller: AdminDep, request: Request) -> TenantOut:
    """Set the weight (1 to 100) and the quota overrides named in `quotas` (null: back to
    the deployment's default); what is not named stays as it is."""
    quotas = body.quotas.model_dump(exclude_unset=True) if body.quotas else None
    with write_session(request.app.state.settings.database_url) as session:
        row = update_tenant(
            session=session,
            tenant=tenant_or_404(session, tenant),
            weight=body.weight,
            quotas=quotas,
            actor=actor_of(caller),
            now=time.time(),
        )
    return tenant_out(row)


def _tenant_id(state: Caller | KeyRefusal) -> str:
    return state.tenant.id if isinstance(state, Caller) else state.tenant_id


def _set_disabled(request: Request, caller: Caller, tenant: str, disabled: bool) -> Tenant:
    with write_session(request.app.state.settings.database_url) as session:
        row = tenant_or_404(session, tenant)
        if disabled and row.id == caller.tenant.id:
            raise Conflict(
                "an admin key cannot disable its own tenant (it would lock itself out); "
                "use another tenant's admin key or `sluice tenants set --disable`",
                code="own_tenant",
                param="tenant",
            )
        row = set_tenant_disabled(
            session=session, tenant=row, disabled=disabled, actor=actor_of(caller), now=time.time()
        )
    # This process takes the change at once; the others within their key cache's time.
    request.app.state.key_cache.discard_where(lambda state: _tenant_id(state) == row.id)
    return row


@router.post("/{tenant}/disable", response_model=TenantOut, summary="Disable a tenant")
def disable(tenant: TenantPath, caller: AdminDep, request: Request) -> TenantOut:
    """Its keys get 403 tenant_disabled (within the key cache's time, 10 s at most) and its
    pending work is not dispatched; what runs finishes. Nothing is deleted."""
    return tenant_out(_set_disabled(request, caller, tenant, True))


@router.post("/{tenant}/enable", response_model=TenantOut, summary="Enable a tenant again")
def enable(tenant: TenantPath, caller: AdminDep, request: Request) -> TenantOut:
    """Its keys work again and its pending work is dispatched."""
    return tenant_out(_set_disabled(request, caller, tenant, False))
