"""Turning every error into one JSON shape: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from api.anthropic_errors import anthropic_error_body, is_anthropic_path
from api.slash_redirect import slash_redirect
from core.errors import (
    SHOWN_CHARS,
    Conflict,
    Forbidden,
    InvalidInput,
    LeaseLost,
    ModelUnavailable,
    NotFound,
    QuotaExceeded,
    SchemaOutdated,
    ServiceUnavailable,
    SluiceError,
    TooLarge,
    Unauthorized,
)

log = logging.getLogger(__name__)
# OpenAI answers a malformed request with 400 (the official client's BadRequestError);
# sluice's native routes keep FastAPI's 422.
OPENAI_PATHS = ("/v1/batches", "/v1/files")
# The HTTP status of each kind of error; a subclass not listed answers as its nearest base.
STATUSES: dict[type[SluiceError], int] = {
    SluiceError: 500,
    InvalidInput: 400,
    ModelUnavailable: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    LeaseLost: 409,  # a worker's, never an answer today; a lost race if one ever is
    TooLarge: 413,
    QuotaExceeded: 429,
    ServiceUnavailable: 503,
    SchemaOutdated: 503,
}


# Bounds on what an answer repeats, whatever raised it: messages quote client values through
# core.errors.shown, and this catches any that does not (a field name, a driver's message).
MAX_MESSAGE_CHARS = 2000
MAX_PARAM_CHARS = 200


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def error_body(
    *,
    message: str,
    kind: str,
    code: str,
    param: str | None = None,
    details: Any = None,
    path: str = "",
    status: int = 400,
) -> dict[str, Any]:
    """The error envelope (OpenAI's shape, plus optional details; Anthropic's on its
    routes, by path and status), its message and param cut to a bounded length."""
    message = _bounded(message, MAX_MESSAGE_CHARS)
    param = None if param is None else _bounded(param, MAX_PARAM_CHARS)
    if is_anthropic_path(path):
        return anthropic_error_body(
            status=status, message=message, code=code, param=param, details=details
        )
    err: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if details is not None:
        err["details"] = details
    return {"error": err}


def status_of(exc: SluiceError) -> int:
    """The HTTP status an error answers with."""
    for cls in type(exc).__mro__:
        if cls in STATUSES:
            return STATUSES[cls]
    return 500


def sluice_response(exc: SluiceError, path: str = "") -> JSONResponse:
    """The answer to a SluiceError at a path: its envelope, status and headers."""
    status = status_of(exc)
    headers = {}
    if isinstance(exc, QuotaExceeded | ServiceUnavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(
            message=exc.message,
            kind=exc.kind,
            code=exc.code,
            param=exc.param,
            details=exc.details,
            path=path,
            status=status,
        ),
        status_code=status,
        headers=headers,
    )


def unavailable_response(exc: Exception, path: str = "") -> JSONResponse:
    """503 for a database or Redis that does not answer."""
    log.warning("backing service unavailable: %s", exc)
    return JSONResponse(
        error_body(
            message="a backing service is unavailable; retry later",
            kind="server_error",
            code="service_unavailable",
            path=path,
            status=503,
        ),
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        # A location may hold a key the client sent (a metadata key): cut, not echoed whole.
        part = p if isinstance(p, int) else _bounded(str(p), SHOWN_CHARS)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return _bounded(out, MAX_PARAM_CHARS)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's 405 names only the first
    matching route's, and /v1/files has two)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map exceptions to HTTP responses."""

    @app.exception_handler(SluiceError)
    async def _sluice(request: Request, exc: SluiceError) -> JSONResponse:
        return sluice_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
        param = _loc(tuple(first.get("loc", ())))
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        details = [
            {"param": _loc(tuple(e.get("loc", ()))), "message": e["msg"]} for e in errors[:20]
        ]
        path = request.url.path
        status = 400 if path.startswith(OPENAI_PATHS) or is_anthropic_path(path) else 422
        return JSONResponse(
            error_body(
                message=message,
                kind="invalid_request_error",
                code="invalid_request",
                param=param or None,
                details=details,
                path=path,
                status=status,
            ),
            status_code=status,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and (redirect := slash_redirect(request)) is not None:
            return redirect
        code = {
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: "body_too_large",
        }.get(exc.status_code, "http_error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(
            error_body(
                message=str(exc.detail),
                kind="invalid_request_error",
                code=code,
                path=request.url.path,
                status=exc.status_code,
            ),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # A client that leaves mid-request (an upload cut short) is not a server error:
        # one line, no traceback; the route has already discarded what it started.
        client = request.client
        log.info(
            "%s %s: the client %s went away before its request was read",
            request.method,
            request.url.path,
            f"{client.host}:{client.port}" if client else "",
        )
        return Response(status_code=400)  # nobody is left to read it

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the request carried (PostgreSQL text cannot hold a
        # NUL character, for one): the request's fault, not an outage.
        log.info("value refused by the database: %s", exc.orig)
        return JSONResponse(
            error_body(
                message=f"a value of the request cannot be stored: {exc.orig}",
                kind="invalid_request_error",
                code="invalid_input",
                path=request.url.path,
            ),
            status_code=400,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        return unavailable_response(exc, request.url.path)
