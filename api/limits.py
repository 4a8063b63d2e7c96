"""Request limits: body size (checked while streaming) and per-tenant submission rate."""

from __future__ import annotations

import logging
import time

import orjson
from redis import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from core.constants import rate_key
from core.errors import QuotaExceeded

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Rejects a request body over max_bytes with 413, without reading past the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = orjson.dumps(
            error_body(
                message=f"request body is larger than {self.max_bytes} bytes",
                kind="invalid_request_error",
                code="body_too_large",
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def check_rate(r: Redis, *, prefix: str, tenant_id: str, per_minute: int) -> None:
    """Count one submission for the tenant; raise QuotaExceeded over the per-minute limit.

    Fails open when Redis is unreachable: the database, not Redis, decides what runs.
    """
    now = time.time()
    window = int(now // 60)
    key = rate_key(prefix, tenant_id, window)
    try:
        pipe = r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
    except Exception as exc:
        log.warning("rate limit not checked, Redis unreachable: %s", exc)
        return
    if count > per_minute:
        raise QuotaExceeded(
            f"more than {per_minute} job submissions per minute",
            retry_after=max(1, int((window + 1) * 60 - now) + 1),
        )
