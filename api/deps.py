"""Request dependencies: the caller's tenant from a bearer API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.db import read_session
from core.errors import Unauthorized
from core.store.tenants import tenant_for_key
from core.tables import Tenant

bearer = HTTPBearer(auto_error=False, description="An API key from `sluice keys create`")


def current_tenant(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Tenant:
    """The tenant owning the presented key; 401 without a valid one."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized(
            "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key"
        )
    with read_session(request.app.state.settings.database_url) as session:
        tenant = tenant_for_key(session=session, key=creds.credentials)
    if tenant is None:
        raise Unauthorized("invalid or revoked API key")
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]
