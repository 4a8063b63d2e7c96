"""/v1/admin/keys, for admin keys: create (scopes, optional expiry), list, read, revoke and
rotate any tenant's keys. A key's secret is shown once, when it is made."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.admin_schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyRotate,
    KeyRotated,
    key_out,
)
from api.deps import STRICT_QUERY, AdminDep, SessionDep, admin_caller, found, page_of
from api.json_route import OrjsonRoute
from api.routes.admin_tenants import actor_of, tenant_or_404
from api.schemas import ERROR_RESPONSES
from core.db import write_session
from core.store.api_keys import add_key, get_key, list_keys, revoke_key, rotate_key
from core.store.tenants import Caller, KeyRefusal

router = APIRouter(
    prefix="/v1/admin/keys",
    tags=["admin"],
    responses=ERROR_RESPONSES,
    dependencies=[*STRICT_QUERY, Depends(admin_caller)],
    route_class=OrjsonRoute,
)
KeyPath = Annotated[str, Path(max_length=64, description="A key's id (key_...)")]


def _forget(request: Request, key_id: str) -> None:
    """This process stops trusting its cached check of the key at once (the others within
    their cache's time, 10 s at most)."""
    request.app.state.key_cache.discard_where(
        lambda state: isinstance(state, Caller | KeyRefusal) and state.key_id == key_id
    )


@router.post("", status_code=201, response_model=KeyCreated, summary="Create a key")
def create(body: KeyCreate, caller: AdminDep, request: Request) -> KeyCreated:
    """A new key of an existing tenant, with its scopes and optional expiry; the secret is
    in `key`, shown this once."""
    now = time.time()
    with write_session(request.app.state.settings.database_url) as session:
        tenant = tenant_or_404(session, body.tenant)
        key, secret = add_key(
            session=session,
            tenant=tenant,
            scopes=body.scopes,
            name=body.name,
            expires_at=body.expiry(now),
            actor=actor_of(caller),
            now=now,
        )
    return KeyCreated(**key_out(key, tenant.name, now).model_dump(), key=secret)


@router.get("", response_model=KeyList, summary="List keys, newest first")
def list_all(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a key id")] = None,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Only this tenant's (an id or name)")
    ] = None,
) -> KeyList:
    """One page of keys (revoked and expired ones too, with their status); pass
    next_cursor as `after` for the next."""
    tenant_id = tenant_or_404(session, tenant).id if tenant is not None else None
    rows = list_keys(session=session, limit=limit + 1, tenant_id=tenant_id, before=after)
    page = page_of(rows, limit)
    now = time.time()
    return KeyList(
        data=[key_out(key, name, now) for key, name in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1][0].id if page.has_more and page.rows else None,
    )


@router.get("/{key_id}", response_model=KeyOut, summary="Get a key")
def get_one(key_id: KeyPath, session: SessionDep) -> KeyOut:
    """A key by id."""
    key = found(get_key(session=session, key_id=key_id), f"no key {key_id!r}", param="key_id")
    return key_out(key, tenant_or_404(session, key.tenant_id).name)


@router.post("/{key_id}/revoke", response_model=KeyOut, summary="Revoke a key")
def revoke(key_id: KeyPath, caller: AdminDep, request: Request) -> KeyOut:
    """The key is refused (401 revoked_api_key) from now on here, and within the key
    cache's time (10 s at most) on every API process; revoking it again changes nothing."""
    with write_session(request.app.state.settings.database_url) as session:
        key = found(
            revoke_key(session=session, key_id=key_id, actor=actor_of(caller), now=time.time()),
            f"no key {key_id!r}",
            param="key_id",
        )
        name = tenant_or_404(session, key.tenant_id).name
    _forget(request, key_id)
    return key_out(key, name)


@router.post("/{key_id}/rotate", response_model=KeyRotated, summary="Rotate a key")
def rotate(
    key_id: KeyPath, caller: AdminDep, request: Request, body: KeyRotate | None = None
) -> KeyRotated:
    """A new key with the same tenant, scopes, name and expiry (its secret shown this
    once); the old key keeps working for `grace_seconds`, then expires (401
    expired_api_key). 409 for a key that is revoked, expired or rotated already."""
    cfg = request.app.state.settings
    grace = cfg.key_rotation_grace_seconds
    if body is not None and body.grace_seconds is not None:
        grace = body.grace_seconds
    now = time.time()
    with write_session(cfg.database_url) as session:
        new, secret, old = found(
            rotate_key(
                session=session, key_id=key_id, actor=actor_of(caller), now=now, grace_seconds=grace
            ),
            f"no key {key_id!r}",
            param="key_id",
        )
        name = tenant_or_404(session, new.tenant_id).name
    _forget(request, key_id)  # its cached check does not know the new expiry
    return KeyRotated(
        key=KeyCreated(**key_out(new, name, now).model_dump(), key=secret),
        previous=key_out(old, name, now),
    )
