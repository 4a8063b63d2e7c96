"""Tenants and their API keys (only a hash of each key is stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import settings
from core.ids import new_id
from core.tables import ApiKey, Tenant
from core.webhooks.targets import WebhookTarget

KEY_PREFIX = "sk-sluice-"


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


def create_key(*, session: Session, tenant_name: str) -> tuple[Tenant, str]:
    """A new API key for a tenant (created if new); the plain key is returned only here."""
    tenant = get_or_create_tenant(session=session, name=tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=new_id("key"),
            tenant_id=tenant.id,
            key_hash=hash_key(key),
            prefix=key[: len(KEY_PREFIX) + 4],
            created_at=time.time(),
        )
    )
    session.flush()
    return tenant, key


def tenant_for_key(*, session: Session, key: str) -> Tenant | None:
    """The tenant owning an unrevoked key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.execute(
        select(Tenant)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    return row


def set_tenant_webhook(
    *, session: Session, name: str, webhook: WebhookTarget | None
) -> Tenant | None:
    """Set (or with None clear) the webhook of the tenant's jobs and batches that name
    none; the tenant, or None if there is no such tenant. It applies to every job that ends
    from now on, whenever it was submitted."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        return None
    tenant.webhook_url = webhook.url if webhook else None
    tenant.webhook_secret = webhook.secret if webhook else None
    session.flush()
    return tenant
