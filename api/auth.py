"""The API key check, in front of every /v1 route: a wrong or missing key is refused before
any byte of the request's body is read, and the route gets the tenant without a second
lookup."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import sluice_response, unavailable_response
from api.scopes import check_scope
from api.ttl_cache import TTLCache
from core.db import read_session, write_session
from core.errors import Forbidden, SluiceError, Unauthorized
from core.store.audit import KEY_USE_EXPIRED, KEY_USE_REVOKED, record_key_refusal
from core.store.tenants import (
    EXPIRED,
    REVOKED,
    TENANT_DISABLED,
    Caller,
    KeyRefusal,
    hash_key,
    lookup_key,
)

log = logging.getLogger(__name__)
# What the key cache holds per key (by its HMAC, never the key): a key that may be used,
# or the refusal of one that exists but may not (so a client stuck on a revoked key costs
# one lookup and at most one audit entry per cache period, not one per request). Keys that
# match nothing are not remembered: guessing cannot fill the cache.
KeyState = Caller | KeyRefusal
# Where the middleware leaves the caller for the route (in the request's scope["state"]).
CALLER_STATE = "sluice_caller"
MISSING_KEY = "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
REFUSAL_AUDIT = {REVOKED: KEY_USE_REVOKED, EXPIRED: KEY_USE_EXPIRED}


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


def refusal_error(refusal: KeyRefusal) -> SluiceError:
    """What a refused key is answered: 401 revoked or expired, 403 for a disabled tenant."""
    if refusal.reason == REVOKED:
        return Unauthorized("this API key was revoked", code="revoked_api_key")
    if refusal.reason == EXPIRED:
        return Unauthorized("this API key has expired", code="expired_api_key")
    assert refusal.reason == TENANT_DISABLED
    return Forbidden("this key's tenant is disabled", code="tenant_disabled")


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == name), None)


def _lookup(database_url: str, key: str) -> KeyState | None:
    now = time.time()
    with read_session(database_url) as session:
        found = lookup_key(session=session, key=key, now=now)
    if isinstance(found, KeyRefusal) and found.reason in REFUSAL_AUDIT:
        try:
            with write_session(database_url) as session:
                record_key_refusal(
                    session=session,
                    action=REFUSAL_AUDIT[found.reason],
                    key_id=found.key_id,
                    tenant_id=found.tenant_id,
                    now=now,
                )
        except SQLAlchemyError as exc:  # the refusal stands; only its record is lost
            log.warning("could not audit the use of key %s: %s", found.key_id, exc)
    return found


async def authenticate(keys: TTLCache[KeyState], database_url: str, key: str) -> Caller:
    """The tenant and scopes of the key (from the per-process cache, else the database,
    in a thread); Unauthorized if no key matches or it is revoked or expired, Forbidden if
    its tenant is disabled."""
    digest = hash_key(key)
    state = keys.get(digest)
    if state is None or (isinstance(state, Caller) and state.expired(time.time())):
        # One lookup per key at a time: the requests that find the entry expired together
        # wait for the same one.
        state = await keys.load_once(digest, partial(run_in_threadpool, _lookup, database_url, key))
        if state is None:
            raise Unauthorized("invalid API key")
        keys.put(digest, state)
    if isinstance(state, KeyRefusal):
        raise refusal_error(state)
    return state


class ApiKeyMiddleware:
    """401 for a /v1 request without a valid key, 403 for a key without the scope the
    request needs (api/scopes.py), both answered before its body is read; the caller of a
    valid one goes into scope["state"] for `CallerDep`, and its use is noted for the key's
    `last used`. A pure ASGI middleware: it never touches the body, so an upload still
    streams."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: settings, key_cache and last_used

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            key = bearer_key(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
            caller = await authenticate(self.state.key_cache, self.state.settings.database_url, key)
            check_scope(caller, scope["method"], scope["path"])
        except (Unauthorized, Forbidden) as exc:
            await sluice_response(exc, scope["path"])(scope, receive, send)
            return
        except DBAPIError as exc:  # the database is down: 503, as the routes answer
            await unavailable_response(exc, scope["path"])(scope, receive, send)
            return
        self.state.last_used.note(caller.key_id)
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)
