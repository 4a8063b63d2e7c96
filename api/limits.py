"""Request limits: body size (checked while streaming), and a key before any body is read."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; an HTTPException, so FastAPI's body
    parsing lets it through to the error handler instead of calling it a parse error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """413 for a body over max_bytes, without reading past the limit; 401 for a /v1 request
    that carries no credentials at all, before its body is read."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_max_bytes: int | None = None,
        upload_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["path"].startswith("/v1/") and b"authorization" not in headers:
            await self._reply(
                send,
                401,
                "missing API key: send `Authorization: Bearer <key>`",
                "authentication_error",
                "missing_api_key",
            )
            return
        limit = self.upload_max_bytes if scope["path"] in self.upload_paths else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        await self._reply(
            send,
            413,
            f"request body is larger than {limit} bytes",
            "invalid_request_error",
            "body_too_large",
        )

    async def _reply(self, send: Send, status: int, message: str, kind: str, code: str) -> None:
        body = orjson.dumps(error_body(message=message, kind=kind, code=code))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
