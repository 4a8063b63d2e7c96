"""Tenants and their API keys (only a hash of each key is stored): issuing a key, and what a
presented key may do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.config import settings
from core.errors import InvalidInput
from core.ids import new_id
from core.tables import ApiKey, Tenant
from core.webhooks.targets import WebhookTarget

KEY_PREFIX = "sk-sluice-"
# What a key may do: `read` its tenant's jobs and files, `submit` (every write: submit,
# upload, cancel, retry, delete), and `admin` (the /v1/admin routes, and reading every
# tenant's jobs), which implies the other two.
READ, SUBMIT, ADMIN = "read", "submit", "admin"
SCOPES = (READ, SUBMIT, ADMIN)
TENANT_SCOPES = (READ, SUBMIT)
ADMIN_SCOPES = (READ, SUBMIT, ADMIN)
# Why a key that exists is refused (KeyRefusal.reason).
REVOKED, EXPIRED, TENANT_DISABLED = "revoked", "expired", "tenant_disabled"


@dataclass(frozen=True)
class Caller:
    """Who a valid key speaks for: its tenant, what the key may do, and until when."""

    tenant: Tenant
    scopes: frozenset[str]
    key_id: str = ""
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the key may administer the deployment and read every tenant's jobs."""
        return ADMIN in self.scopes

    def allows(self, scope: str) -> bool:
        """Whether the key has a scope (admin has them all)."""
        return scope in self.scopes or ADMIN in self.scopes

    def expired(self, now: float) -> bool:
        """Whether the key's expiry has passed."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class KeyRefusal:
    """A key that exists but may not be used: revoked, expired, or of a disabled tenant."""

    reason: str
    key_id: str
    tenant_id: str


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes in canonical order, `admin` adding the others; InvalidInput for an
    unknown scope or none at all."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scope {unknown[0]!r}: scopes are {', '.join(SCOPES)}",
            code="invalid_scope",
            param="scopes",
        )
    if not given:
        raise InvalidInput("a key needs at least one scope", code="invalid_scope", param="scopes")
    if ADMIN in given:
        given |= {READ, SUBMIT}
    return tuple(s for s in SCOPES if s in given)


def scopes_of(stored: str) -> frozenset[str]:
    """The scopes of a key as stored (comma-separated; empty: what keys could do before
    scopes existed)."""
    return frozenset(s for s in stored.split(",") if s) or frozenset(TENANT_SCOPES)


def hash_key(key: str) -> str:
    """The stored form of an API key: HMAC-SHA256 with the deployment's pepper."""
    return hmac.new(settings.key_pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    """The tenant of that name, created if new."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=name, created_at=time.time())
        session.add(tenant)
        session.flush()
    return tenant


def issue_key(
    *,
    session: Session,
    tenant: Tenant,
    scopes: Iterable[str] = TENANT_SCOPES,
    name: str | None = None,
    expires_at: float | None = None,
    now: float | None = None,
) -> tuple[ApiKey, str]:
    """A new key of a tenant; the plain key is returned only here, the row keeps its hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=new_id("key"),
        tenant_id=tenant.id,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 4],
        created_at=time.time() if now is None else now,
        scopes=",".join(normalize_scopes(scopes)),
        name=name,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, key


def create_key(
    *,
    session: Session,
    tenant_name: str,
    admin: bool = False,
    scopes: Iterable[str] | None = None,
    expires_at: float | None = None,
    name: str | None = None,
) -> tuple[Tenant, str]:
    """A new API key for a tenant (created if new), with the admin scope if asked (or the
    scopes given); the plain key is returned only here."""
    tenant = get_or_create_tenant(session=session, name=tenant_name)
    chosen = scopes if scopes is not None else (ADMIN_SCOPES if admin else TENANT_SCOPES)
    _, key = issue_key(
        session=session, tenant=tenant, scopes=chosen, expires_at=expires_at, name=name
    )
    return tenant, key


def lookup_key(*, session: Session, key: str, now: float) -> Caller | KeyRefusal | None:
    """What a presented key is: a Caller if it may be used, a KeyRefusal if it exists but
    is revoked, expired or of a disabled tenant, None if no key matches."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.execute(
        select(Tenant, ApiKey)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key))
    ).one_or_none()
    if row is None:
        return None
    tenant, api_key = row
    if api_key.revoked_at is not None:
        return KeyRefusal(reason=REVOKED, key_id=api_key.id, tenant_id=tenant.id)
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return KeyRefusal(reason=EXPIRED, key_id=api_key.id, tenant_id=tenant.id)
    if tenant.disabled_at is not None:
        return KeyRefusal(reason=TENANT_DISABLED, key_id=api_key.id, tenant_id=tenant.id)
    return Caller(
        tenant=tenant,
        scopes=scopes_of(api_key.scopes),
        key_id=api_key.id,
        expires_at=api_key.expires_at,
    )


def caller_for_key(*, session: Session, key: str) -> Caller | None:
    """The tenant and scopes of a key that may be used now, or None."""
    found = lookup_key(session=session, key=key, now=time.time())
    return found if isinstance(found, Caller) else None


def tenant_named(*, session: Session, id_or_name: str) -> Tenant | None:
    """The tenant with that id or name, or None."""
    return session.scalar(
        select(Tenant).where(or_(Tenant.id == id_or_name, Tenant.name == id_or_name))
    )


def set_tenant_webhook(
    *, session: Session, id_or_name: str, webhook: WebhookTarget | None
) -> Tenant | None:
    """Set (or with None clear) the webhook of the tenant's jobs and batches that name
    none; the tenant, or None if there is no such tenant. It applies to every job that ends
    from now on, whenever it was submitted."""
    tenant = tenant_named(session=session, id_or_name=id_or_name)
    if tenant is None:
        return None
    tenant.webhook_url = webhook.url if webhook else None
    tenant.webhook_secret = webhook.secret if webhook else None
    session.flush()
    return tenant
