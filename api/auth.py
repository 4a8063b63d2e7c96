"""The API key check, in front of every /v1 route: a wrong or missing key is refused before
any byte of the request's body is read, and the route gets the tenant without a second
lookup."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import sluice_response, unavailable_response
from api.ttl_cache import TTLCache
from core.db import read_session
from core.errors import Unauthorized
from core.store.tenants import Caller, caller_for_key, hash_key

# Valid keys are remembered this long per API process (by their HMAC, never the key): a
# poll then costs no database round trip for its key; a revoked key stops working within
# this time.
KEY_CACHE_SECONDS = 10.0
# Where the middleware leaves the caller for the route (in the request's scope["state"]).
CALLER_STATE = "sluice_caller"
MISSING_KEY = "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"


def bearer_key(authorization: str | None, api_key: str | None = None) -> str:
    """The key of a `Bearer` Authorization header (parsed as FastAPI's HTTPBearer does),
    else of an `x-api-key` header (as Anthropic's clients send it); Unauthorized
    (missing_api_key) without either."""
    if authorization is None and api_key:
        return api_key
    scheme, key = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and key) or scheme.lower() != "bearer":
        raise Unauthorized(MISSING_KEY, code="missing_api_key")
    return key


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == name), None)


def _lookup(database_url: str, key: str) -> Caller | None:
    with read_session(database_url) as session:
        return caller_for_key(session=session, key=key)


async def authenticate(keys: TTLCache[Caller], database_url: str, key: str) -> Caller:
    """The tenant and scopes of the key (from the per-process cache, else the database,
    in a thread); Unauthorized if no unrevoked key matches."""
    digest = hash_key(key)
    caller = keys.get(digest)
    if caller is None:
        # One lookup per key at a time: the requests that find the entry expired together
        # wait for the same one.
        caller = await keys.load_once(
            digest, partial(run_in_threadpool, _lookup, database_url, key)
        )
        if caller is None:
            raise Unauthorized("invalid or revoked API key")
        keys.put(digest, caller)
    return caller


class ApiKeyMiddleware:
    """401 for a /v1 request without a valid key, answered before its body is read; the
    tenant of a valid one goes into scope["state"] for `TenantDep`. A pure ASGI middleware:
    it never touches the body, so an upload still streams."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: settings and key_cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            key = bearer_key(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
            caller = await authenticate(self.state.key_cache, self.state.settings.database_url, key)
        except Unauthorized as exc:
            await sluice_response(exc, scope["path"])(scope, receive, send)
            return
        except DBAPIError as exc:  # the database is down: 503, as the routes answer
            await unavailable_response(exc, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)
