"""Request and response bodies of the /v1/admin routes (tenants, keys, the audit log) and of
a tenant's own views of its keys and audit entries."""

from __future__ import annotations

import time
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.store.api_keys import key_status
from core.store.tenant_admin import MAX_WEIGHT, MIN_WEIGHT, quotas_of
from core.store.tenants import SCOPES, TENANT_SCOPES, scopes_of
from core.tables import ApiKey, AuditEvent, Tenant

Scope = Literal["read", "submit", "admin"]
MAX_GRACE_SECONDS = 30 * 86400


class TenantQuotas(BaseModel):
    """Quota overrides; null (or absent) keeps the deployment's default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    queued_items: int | None = Field(default=None, ge=0, le=2**62)
    concurrent_jobs: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stored_bytes: int | None = Field(default=None, ge=0, le=2**62)
    uploads_per_minute: int | None = Field(default=None, ge=0, le=2**31 - 1)
    submissions_per_minute: int | None = Field(default=None, ge=0, le=2**31 - 1)


class TenantCreate(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits, '.', '_' or '-'; unique",
    )
    weight: int = Field(default=1, ge=MIN_WEIGHT, le=MAX_WEIGHT, description="Share of dispatches")
    quotas: TenantQuotas | None = None


class TenantUpdate(BaseModel):
    """What to change: the weight, and the quotas named (null: back to the default)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    weight: int | None = Field(default=None, ge=MIN_WEIGHT, le=MAX_WEIGHT)
    quotas: TenantQuotas | None = None


class TenantOut(BaseModel):
    """A tenant as admins see it."""

    object: Literal["tenant"] = "tenant"
    id: str
    name: str
    created_at: float
    weight: int
    disabled: bool
    disabled_at: float | None
    quotas: TenantQuotas


class TenantList(BaseModel):
    """A page of tenants by name."""

    object: Literal["list"] = "list"
    data: list[TenantOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


class KeyCreate(BaseModel):
    """A new key for an existing tenant."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: str = Field(min_length=1, max_length=200, description="The tenant's id or name")
    scopes: list[Scope] = Field(
        default_factory=lambda: cast(list[Scope], list(TENANT_SCOPES)),
        min_length=1,
        max_length=len(SCOPES),
        description="read, submit and/or admin (admin implies the others)",
    )
    name: str | None = Field(default=None, max_length=200, description="What the key is for")
    expires_at: float | None = Field(default=None, description="Unix seconds; refused after")
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _one_expiry(self) -> KeyCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        if self.expires_at is not None and self.expires_at <= time.time():
            raise ValueError("expires_at is in the past")
        return self

    def expiry(self, now: float) -> float | None:
        """When the key expires, if it does."""
        if self.expires_in_days is not None:
            return now + self.expires_in_days * 86400
        return self.expires_at


class KeyRotate(BaseModel):
    """How long the old key keeps working."""

    model_config = ConfigDict(extra="forbid", strict=True)

    grace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="Default SLUICE_KEY_ROTATION_GRACE_SECONDS (a day)",
    )


class KeyOut(BaseModel):
    """A key as listed: never its secret."""

    object: Literal["api_key"] = "api_key"
    id: str
    tenant_id: str
    tenant: str
    name: str | None
    prefix: str
    scopes: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: float
    last_used_at: float | None = Field(description="Recorded at most once a minute")
    expires_at: float | None
    revoked_at: float | None
    replaced_by: str | None = Field(description="The key a rotation made in its place")


class KeyCreated(KeyOut):
    """A new key with its secret, shown this once."""

    key: str = Field(description="The secret: store it now, it is not shown again")


class KeyRotated(BaseModel):
    """The new key (with its secret) and the old one, working until its expires_at."""

    object: Literal["api_key.rotation"] = "api_key.rotation"
    key: KeyCreated
    previous: KeyOut


class KeyList(BaseModel):
    """A page of keys, newest first."""

    object: Literal["list"] = "list"
    data: list[KeyOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


class AuditOut(BaseModel):
    """One audit entry."""

    object: Literal["audit_event"] = "audit_event"
    id: int
    at: float
    action: str
    tenant_id: str | None
    actor: str = Field(description="A key id, `cli`, or `admin` (an operator, seen by a tenant)")
    target_id: str | None
    details: dict[str, Any] | None


class AuditList(BaseModel):
    """A page of audit entries, newest first."""

    object: Literal["list"] = "list"
    data: list[AuditOut]
    has_more: bool
    next_cursor: int | None = Field(description="Pass as `after` for the next (older) page")


def tenant_out(tenant: Tenant) -> TenantOut:
    """The API view of a tenant."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        created_at=tenant.created_at,
        weight=tenant.weight,
        disabled=tenant.disabled_at is not None,
        disabled_at=tenant.disabled_at,
        quotas=TenantQuotas(**quotas_of(tenant)),
    )


def key_out(key: ApiKey, tenant_name: str, now: float | None = None) -> KeyOut:
    """The API view of a key."""
    return KeyOut(
        id=key.id,
        tenant_id=key.tenant_id,
        tenant=tenant_name,
        name=key.name,
        prefix=key.prefix,
        scopes=sorted(scopes_of(key.scopes), key=SCOPES.index),
        status=key_status(key, time.time() if now is None else now),  # type: ignore[arg-type]
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        replaced_by=key.replaced_by,
    )


def audit_out(event: AuditEvent, viewer_tenant_id: str | None = None) -> AuditOut:
    """The API view of an entry; a tenant (viewer_tenant_id) sees another tenant's key as
    the actor only as `admin`."""
    actor = event.actor
    if viewer_tenant_id is not None and event.actor_tenant_id not in (None, viewer_tenant_id):
        actor = "admin"
    return AuditOut(
        id=event.id,
        at=event.at,
        action=event.action,
        tenant_id=event.tenant_id,
        actor=actor,
        target_id=event.target_id,
        details=event.details,
    )
