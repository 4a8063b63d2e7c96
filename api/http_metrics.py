"""Timing every HTTP request by its route's path template (`/v1/jobs/{job_id}`, never the
raw path, so the label's values stay as few as the routes; long-polls get `?wait` after
it), method and status."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HTTP_DURATION

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# Long-polls wait by design: a label of their own keeps them from hiding the latency of
# plain reads of the same route.
LONG_POLL = "?wait"


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Routes in matching order, with included routers opened (FastAPI keeps an included
    router as one entry whose own routes carry the full path)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        else:
            yield route


def route_template(scope: Scope) -> str:
    """The path template of the route that took (or would take) the request; `unmatched`
    when none does."""
    route = scope.get("route")
    if route is None:  # answered before routing (a wrong key, a body too large)
        app: Any = scope.get("app")
        partial = None  # the path matches, the method does not (405), as Starlette picks
        for candidate in _routes(getattr(getattr(app, "router", None), "routes", ())):
            match = candidate.matches(scope)[0]
            if match == Match.FULL:
                route = candidate
                break
            if match == Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED
    return path + LONG_POLL if is_long_poll(scope) else path


def is_long_poll(scope: Scope) -> bool:
    """Whether the request asks to wait for a change (`?wait=` above 0)."""
    query = scope.get("query_string") or b""
    if b"wait=" not in query:
        return False
    values = parse_qs(query.decode("latin-1")).get("wait", [])
    try:
        return any(float(v) > 0 for v in values)
    except ValueError:
        return False


class HttpMetricsMiddleware:
    """Observes each request's duration, until its response's last byte, in
    sluice_http_request_duration_seconds (outermost, so refusals are timed too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            method = scope.get("method", "")
            HTTP_DURATION.labels(
                method if method in METHODS else "other", route_template(scope), str(status)
            ).observe(time.perf_counter() - began)
