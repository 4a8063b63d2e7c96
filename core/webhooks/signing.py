"""Standard Webhooks signing: a secret is `whsec_` + base64 of 24 to 64 random bytes; each
attempt carries webhook-id, webhook-timestamp and webhook-signature `v1,<base64 of
HMAC-SHA256("{id}.{timestamp}.{body}") keyed with the secret's bytes>`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from core.errors import InvalidInput

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_SECRET_CHARS = len(SECRET_PREFIX) + 4 * ((MAX_SECRET_BYTES + 2) // 3)


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret stands for; InvalidInput if it is not one."""
    body = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else None
    key = b""
    if body is not None and len(secret) <= MAX_SECRET_CHARS:
        try:  # padding is optional, as the reference libraries read it
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidInput(
            f"webhook.secret must be {SECRET_PREFIX!r} followed by the base64 of "
            f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes",
            code="invalid_webhook_secret",
            param="webhook.secret",
        )
    return key


def new_secret() -> str:
    """A fresh secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header of one attempt."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header an attempt sends."""
    return {
        "content-type": "application/json",
        "user-agent": "sluice-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=secret, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }
