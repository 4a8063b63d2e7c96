"""Administering tenants: create, list, update weight and quota overrides, disable and enable;
every change is audited in its own transaction."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.ids import new_id
from core.store.audit import (
    TENANT_CREATE,
    TENANT_DISABLE,
    TENANT_ENABLE,
    TENANT_UPDATE,
    Actor,
    record_event,
)
from core.tables import Tenant

# The quotas a tenant may override (column quota_<kind>); None keeps the deployment default.
QUOTA_KINDS = (
    "queued_items",
    "concurrent_jobs",
    "stored_bytes",
    "uploads_per_minute",
    "submissions_per_minute",
)
MIN_WEIGHT, MAX_WEIGHT = 1, 100
# Names appear in URLs, listings and logs: letters, digits, `.`, `_` and `-`.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_tenant_name(name: str) -> str:
    """The name, if a new tenant may have it; InvalidInput otherwise."""
    if not TENANT_NAME.fullmatch(name):
        raise InvalidInput(
            "a tenant name is 1 to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            code="invalid_tenant_name",
            param="name",
        )
    return name


def check_weight(weight: int) -> int:
    """The weight, if within 1 to 100; InvalidInput otherwise."""
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise InvalidInput(
            f"weight must be {MIN_WEIGHT} to {MAX_WEIGHT}", code="invalid_weight", param="weight"
        )
    return weight


def quotas_of(tenant: Tenant) -> dict[str, int | None]:
    """The tenant's quota overrides by kind (None: the deployment default)."""
    return {kind: getattr(tenant, f"quota_{kind}") for kind in QUOTA_KINDS}


def _checked_quotas(quotas: dict[str, int | None]) -> dict[str, int | None]:
    for kind, value in quotas.items():
        if kind not in QUOTA_KINDS:
            raise InvalidInput(
                f"unknown quota {kind!r}: quotas are {', '.join(QUOTA_KINDS)}",
                code="invalid_quota",
                param=f"quotas.{kind}",
            )
        if value is not None and value < 0:
            raise InvalidInput(
                f"quota {kind} must be 0 or more (or null for the default)",
                code="invalid_quota",
                param=f"quotas.{kind}",
            )
    return quotas


def create_tenant(
    *,
    session: Session,
    name: str,
    actor: Actor,
    now: float,
    weight: int = MIN_WEIGHT,
    quotas: dict[str, int | None] | None = None,
) -> Tenant:
    """A new tenant (audited); Conflict(tenant_exists) if the name is taken."""
    check_tenant_name(name)
    check_weight(weight)
    overrides = _checked_quotas(quotas or {})
    taken = Conflict(f"a tenant named {name!r} exists", code="tenant_exists", param="name")
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise taken
    tenant = Tenant(id=new_id("ten"), name=name, created_at=now, weight=weight)
    for kind, value in overrides.items():
        setattr(tenant, f"quota_{kind}", value)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:  # created by another request since the check
        raise taken from exc
    record_event(
        session=session,
        action=TENANT_CREATE,
        actor=actor,
        now=now,
        tenant_id=tenant.id,
        target_id=tenant.id,
        details={"name": name, "weight": weight, "quotas": overrides},
    )
    return tenant


def list_tenants(*, session: Session, limit: int, after: str | None = None) -> list[Tenant]:
    """Tenants by name, those after the name `after` when paging on."""
    q = select(Tenant)
    if after is not None:
        q = q.where(Tenant.name > after)
    return list(session.scalars(q.order_by(Tenant.name).limit(limit)))


def update_tenant(
    *,
    session: Session,
    tenant: Tenant,
    actor: Actor,
    now: float,
    weight: int | None = None,
    quotas: dict[str, int | None] | None = None,
) -> Tenant:
    """Set a tenant's weight (None: unchanged) and the quota overrides named in `quotas`
    (a None value: back to the default); audited with what changed, if anything did."""
    changes: dict[str, Any] = {}
    if weight is not None and check_weight(weight) != tenant.weight:
        changes["weight"] = [tenant.weight, weight]
        tenant.weight = weight
    for kind, value in _checked_quotas(quotas or {}).items():
        column = f"quota_{kind}"
        if getattr(tenant, column) != value:
            changes[f"quotas.{kind}"] = [getattr(tenant, column), value]
            setattr(tenant, column, value)
    if changes:
        session.flush()
        record_event(
            session=session,
            action=TENANT_UPDATE,
            actor=actor,
            now=now,
            tenant_id=tenant.id,
            target_id=tenant.id,
            details={"changes": changes},
        )
    return tenant


def set_tenant_disabled(
    *, session: Session, tenant: Tenant, disabled: bool, actor: Actor, now: float
) -> Tenant:
    """Disable a tenant (its keys are refused, its pending work is not dispatched) or enable
    it again; audited when that changes anything."""
    if (tenant.disabled_at is not None) == disabled:
        return tenant
    tenant.disabled_at = now if disabled else None
    session.flush()
    record_event(
        session=session,
        action=TENANT_DISABLE if disabled else TENANT_ENABLE,
        actor=actor,
        now=now,
        tenant_id=tenant.id,
        target_id=tenant.id,
    )
    return tenant
