"""Request limits: body size (checked while streaming), how long a body may stall, and how
many large bodies are taken in at once."""

from __future__ import annotations

import asyncio
import logging

import anyio
import anyio.to_thread
import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.memory import release_free_memory

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; an HTTPException, so FastAPI's body
    parsing lets it through to the error handler instead of calling it a parse error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodyTimedOut(HTTPException):
    """Raised when a body's next part does not arrive in time: a 408 that closes the
    connection (an HTTPException, so FastAPI's body parsing lets it through)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body stalled: nothing arrived for {seconds:g} s",
            headers={"Connection": "close"},
        )


class BodyTimeoutMiddleware:
    """408 for a request whose body stalls: each read of the body waits at most `seconds`
    for the client to send more. A body that keeps coming is never cut, however large;
    once the body is complete, reads (which then wait for a disconnect) are not timed."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.seconds):  # no task per read, as wait_for
                    message = await receive()
            except TimeoutError:
                body_done = True  # what follows is the answer, not more waiting
                client = scope.get("client")
                log.info(
                    "%s %s from %s: body stalled for %g s; answered 408",
                    scope["method"],
                    scope["path"],
                    f"{client[0]}:{client[1]}" if client else "a client",
                    self.seconds,
                )
                raise BodyTimedOut(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)


class BodyLimitMiddleware:
    """413 for a body over max_bytes, without reading past the limit."""

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
        limit = self.upload_max_bytes if scope["path"] in self.upload_paths else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit, scope["path"])
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
                await self._too_large(send, limit, scope["path"])

    async def _too_large(self, send: Send, limit: int, path: str) -> None:
        message = f"request body is larger than {limit} bytes"
        body = orjson.dumps(
            error_body(
                message=message,
                kind="invalid_request_error",
                code="body_too_large",
                path=path,
                status=413,
            )
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def has_large_body(scope: Scope, min_bytes: int) -> bool:
    """Whether a request declares a body over min_bytes, or one of unknown length."""
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            return not value.isdigit() or int(value) > min_bytes
        if name == b"transfer-encoding":
            return True
    return False


class LargeBodyGate:
    """Lets at most `slots` requests with a large body (over min_bytes, or of unknown
    length) in at once; the others wait with their bodies unread, so the memory of parsing
    and checking big jobs does not add up. Uploads (exempt_paths) stream in bounded memory
    and pass freely. After each large request the heap's free pages go back to the OS."""

    def __init__(
        self, app: ASGIApp, min_bytes: int, slots: int, exempt_paths: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.min_bytes = min_bytes
        self.slots = anyio.Semaphore(slots)
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.exempt_paths
            or not has_large_body(scope, self.min_bytes)
        ):
            await self.app(scope, receive, send)
            return
        async with self.slots:
            try:
                await self.app(scope, receive, send)
            finally:
                await anyio.to_thread.run_sync(release_free_memory)
