"""Tenants and their API keys (only a hash of each key is stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.config import settings
from core.ids import new_id
from core.tables import ApiKey, Tenant
from core.webhooks.targets import WebhookTarget

KEY_PREFIX = "sk-sluice-"
# What a key may do: read and submit within its tenant; admin reads every tenant's jobs.
READ, SUBMIT, ADMIN = "read", "submit", "admin"
TENANT_SCOPES = (READ, SUBMIT)
ADMIN_SCOPES = (READ, SUBMIT, ADMIN)


@dataclass(frozen=True)
class Caller:
    """Who a valid key speaks for: its tenant and what the key may do."""

    tenant: Tenant
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        """Whether the key may read every tenant's jobs."""
        return ADMIN in self.scopes


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


def create_key(*, session: Session, tenant_name: str, admin: bool = False) -> tuple[Tenant, str]:
    """A new API key for a tenant (created if new), with the admin scope if asked; the
    plain key is returned only here."""
    tenant = get_or_create_tenant(session=session, name=tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=new_id("key"),
            tenant_id=tenant.id,
            key_hash=hash_key(key),
            prefix=key[: len(KEY_PREFIX) + 4],
            created_at=time.time(),
            scopes=",".join(ADMIN_SCOPES if admin else TENANT_SCOPES),
        )
    )
    session.flush()
    return tenant, key


def caller_for_key(*, session: Session, key: str) -> Caller | None:
    """The tenant and scopes of an unrevoked key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.execute(
        select(Tenant, ApiKey.scopes)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    tenant, scopes = row
    return Caller(tenant=tenant, scopes=frozenset(s for s in scopes.split(",") if s))


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
