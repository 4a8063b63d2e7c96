"""Administering API keys: issue, list, revoke, rotate (the old key lives on for a grace
period), and the throttled record of each key's last use. Every change is audited in its
own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.errors import Conflict
from core.store.audit import KEY_CREATE, KEY_REVOKE, KEY_ROTATE, Actor, record_event
from core.store.chunk_leases import affected_rows
from core.store.tenants import issue_key, scopes_of
from core.tables import ApiKey, Tenant

ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"


def key_status(key: ApiKey, now: float) -> str:
    """Whether a key is active, revoked or expired."""
    if key.revoked_at is not None:
        return REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return EXPIRED
    return ACTIVE


def describe_key(key: ApiKey) -> dict[str, Any]:
    """What the audit log keeps of a key: never its secret or hash."""
    return {
        "prefix": key.prefix,
        "scopes": sorted(scopes_of(key.scopes)),
        "name": key.name,
        "expires_at": key.expires_at,
    }


def add_key(
    *,
    session: Session,
    tenant: Tenant,
    actor: Actor,
    now: float,
    scopes: Iterable[str],
    name: str | None = None,
    expires_at: float | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key to a tenant (audited); the plain key is returned only here."""
    key, secret = issue_key(
        session=session, tenant=tenant, scopes=scopes, name=name, expires_at=expires_at, now=now
    )
    record_event(
        session=session,
        action=KEY_CREATE,
        actor=actor,
        now=now,
        tenant_id=tenant.id,
        target_id=key.id,
        details=describe_key(key),
    )
    return key, secret


def list_keys(
    *, session: Session, limit: int, tenant_id: str | None = None, before: str | None = None
) -> list[tuple[ApiKey, str]]:
    """Keys newest first with their tenant's name (of one tenant if given), those older
    than the key `before` when paging on."""
    q = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
    if tenant_id is not None:
        q = q.where(ApiKey.tenant_id == tenant_id)
    if before is not None:
        q = q.where(ApiKey.id < before)
    rows = session.execute(q.order_by(ApiKey.id.desc()).limit(limit))
    return [(key, name) for key, name in rows]


def get_key(*, session: Session, key_id: str, tenant_id: str | None = None) -> ApiKey | None:
    """A key by id (within a tenant if given), or None."""
    q = select(ApiKey).where(ApiKey.id == key_id)
    if tenant_id is not None:
        q = q.where(ApiKey.tenant_id == tenant_id)
    return session.scalar(q)


def _for_update(session: Session, key_id: str) -> ApiKey | None:
    """A key read under a row lock (PostgreSQL; SQLite's writers are serial already)."""
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())


def revoke_key(*, session: Session, key_id: str, actor: Actor, now: float) -> ApiKey | None:
    """Revoke a key (audited; revoking it again changes nothing); None if there is none."""
    key = _for_update(session, key_id)
    if key is None or key.revoked_at is not None:
        return key
    key.revoked_at = now
    session.flush()
    record_event(
        session=session,
        action=KEY_REVOKE,
        actor=actor,
        now=now,
        tenant_id=key.tenant_id,
        target_id=key.id,
        details=describe_key(key),
    )
    return key


def rotate_key(
    *, session: Session, key_id: str, actor: Actor, now: float, grace_seconds: float
) -> tuple[ApiKey, str, ApiKey] | None:
    """A new key with the old one's tenant, scopes, name and expiry; the old one keeps
    working for grace_seconds, then expires. (new key, its secret, old key), None if there
    is no such key; Conflict for a key that is revoked, expired or already rotated."""
    old = _for_update(session, key_id)
    if old is None:
        return None
    status = key_status(old, now)
    if status != ACTIVE:
        raise Conflict(f"key {key_id} is {status}: issue a new one", code=f"key_{status}")
    if old.replaced_by is not None:
        raise Conflict(
            f"key {key_id} was rotated already (its replacement is {old.replaced_by})",
            code="key_rotated",
        )
    tenant = session.get(Tenant, old.tenant_id)
    assert tenant is not None  # a key's tenant cannot go: the foreign key cascades
    new, secret = issue_key(
        session=session,
        tenant=tenant,
        scopes=scopes_of(old.scopes),
        name=old.name,
        expires_at=old.expires_at,
        now=now,
    )
    end_of_grace = now + grace_seconds
    if old.expires_at is None or old.expires_at > end_of_grace:
        old.expires_at = end_of_grace
    old.replaced_by = new.id
    session.flush()
    record_event(
        session=session,
        action=KEY_ROTATE,
        actor=actor,
        now=now,
        tenant_id=old.tenant_id,
        target_id=old.id,
        details={
            **describe_key(old),
            "new_key_id": new.id,
            "new_prefix": new.prefix,
            "grace_seconds": grace_seconds,
        },
    )
    return new, secret, old


def touch_key(*, session: Session, key_id: str, now: float, every: float) -> bool:
    """Set a key's last use to now unless it was set within `every` seconds (so however
    many processes report a key, its row changes at most once per interval); whether it
    changed."""
    stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - every)
    changed = update(ApiKey).where(ApiKey.id == key_id, stale).values(last_used_at=now)
    return affected_rows(session, changed) == 1
