"""The opt-in access log (SLUICE_ACCESS_LOG=true): one line per HTTP request, written when
its response has been sent, on the logger `sluice.access`.

What a line may hold is decided here, never by the request: the method, the path, the
query string with the values of only the parameters the API takes (any other name's value,
where a key pasted by mistake would sit, shows as ***), the status, the bytes sent, the
time taken, the tenant the key belongs to and the client's address. No header is logged:
API keys travel in `Authorization`.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import CALLER_STATE

log = logging.getLogger("sluice.access")
# Query parameters of the API whose values are never secret.
SHOWN_QUERY_NAMES = frozenset(
    {"wait", "limit", "after", "status", "model", "tenant", "format", "only", "examples",
     "purpose"}
)  # fmt: skip
MAX_TARGET_CHARS = 300


def shown_target(path: str, query_string: bytes) -> str:
    """The request's path and query as a line may show them."""
    if not query_string:
        return path[:MAX_TARGET_CHARS]
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    shown = "&".join(
        f"{quote(name)}={quote(value) if name in SHOWN_QUERY_NAMES else '***'}"
        for name, value in pairs
    )
    return f"{path}?{shown}"[:MAX_TARGET_CHARS]


class AccessLogMiddleware:
    """Logs each HTTP request once its response is done (or has failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 500, 0  # what a request that raises before answering counts as

        async def send_counted(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            caller = (scope.get("state") or {}).get(CALLER_STATE)
            tenant = getattr(getattr(caller, "tenant", None), "id", None)
            client = scope.get("client")
            log.info(
                '%s "%s %s" %d %dB %.1fms tenant=%s',
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                # as sent, still percent-encoded: a decoded %0A would forge a line
                shown_target(
                    scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
                    scope.get("query_string", b""),
                ),
                status,
                sent,
                (time.perf_counter() - started) * 1000,
                tenant or "-",
            )
