"""A deadline on a request's head: uvicorn waits for headers as long as a client cares to
send them (a byte a second held a connection for as long as the probe ran), so these
protocols close a connection whose request line and headers are not complete within
SLUICE_HEADER_TIMEOUT_SECONDS of its opening or of the request's first byte, with a 408.

The body has its own deadline (api/limits.py BodyTimeoutMiddleware): once the head is in,
the app is running and can answer for itself. `sluice api` runs uvicorn with
`http="api.header_timeout:AutoHeaderDeadlineProtocol"`: the protocol uvicorn would pick,
plus the deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.errors import error_body
from core.config import settings

log = logging.getLogger(__name__)


def timeout_response(seconds: float) -> bytes:
    """The raw 408 a connection gets before it is closed."""
    body = orjson.dumps(
        error_body(
            message=f"the request's headers did not arrive within {seconds:g} s",
            kind="invalid_request_error",
            code="request_timeout",
        )
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: a timer runs while the connection waits for a
    request's head, from the connection's opening or the request's first byte."""

    cycle: Any
    transport: asyncio.Transport
    client: tuple[str, int] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_seconds = settings.header_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self._head_timer is None and (cycle is None or cycle.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not cycle:  # a request's head is complete: the app takes it on
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._head_seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its body has its own deadline
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info(
            "closed the connection of %s: no complete request head within %g s",
            client,
            self._head_seconds,
        )
        self.transport.write(timeout_response(self._head_seconds))
        self.transport.close()


class H11WithHeaderDeadline(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the head deadline."""


AutoHeaderDeadlineProtocol: type[asyncio.Protocol]
try:  # the protocol uvicorn's "auto" picks: httptools where installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional in uvicorn
    AutoHeaderDeadlineProtocol = H11WithHeaderDeadline
else:

    class HttpToolsWithHeaderDeadline(HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head deadline."""

    AutoHeaderDeadlineProtocol = HttpToolsWithHeaderDeadline
