"""Request dependencies: the caller's tenant from a bearer API key, a read session, a row
or 404, and cursor pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import CALLER_STATE, authenticate, bearer_key
from api.scopes import check_scope
from core.db import read_session
from core.errors import Forbidden, InvalidInput, NotFound, shown
from core.store.tenants import Caller
from core.tables import Tenant

T = TypeVar("T")
# Declared for the OpenAPI spec's security scheme; ApiKeyMiddleware does the checking.
bearer = HTTPBearer(auto_error=False, description="An API key from `sluice keys create`")


async def current_caller(
    request: Request,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The tenant and scopes ApiKeyMiddleware found for the request's key (checked here
    too where an app runs without it); 401 without a valid key, 403 without the scope the
    request needs."""
    caller = request.scope.get("state", {}).get(CALLER_STATE)
    if isinstance(caller, Caller):
        return caller
    state = request.app.state
    key = bearer_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    caller = await authenticate(state.key_cache, state.settings.database_url, key)
    check_scope(caller, request.method, request.url.path)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


async def current_tenant(caller: CallerDep) -> Tenant:
    """The tenant of the request's key."""
    return caller.tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


def require_admin(caller: Caller) -> None:
    """403 insufficient_scope unless the key has the admin scope."""
    if not caller.is_admin:
        raise Forbidden("this needs an admin key (`sluice keys create --admin`)")


async def admin_caller(caller: CallerDep) -> Caller:
    """The caller, if its key has the admin scope (the /v1/admin routes check it here too,
    besides the middleware's check by path)."""
    require_admin(caller)
    return caller


AdminDep = Annotated[Caller, Depends(admin_caller)]


def _query_names(dependant: Any) -> frozenset[str]:
    """The query parameters a route's dependency tree declares."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _route_query_names(request: Request, route: APIRoute) -> frozenset[str]:
    """_query_names of a route, walked once per route and app rather than per request
    (routes cannot be hashed; they live as long as their app, so their ids are stable)."""
    cache: dict[int, frozenset[str]] = request.app.state.query_names
    names = cache.get(id(route))
    if names is None:
        names = cache[id(route)] = _query_names(route.dependant)
    return names


async def reject_unknown_query(request: Request) -> None:
    """400 for a query parameter the route does not take (a typo such as `?limt=5`
    would otherwise be ignored silently), one given twice (every one takes one value), or
    a NUL character in a parameter or a path id. Async, as it waits for nothing: a sync
    dependency costs every request a trip through the thread pool."""
    # PostgreSQL text cannot hold NUL: refuse it in any id or parameter before a query does.
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if "\x00" in str(value):
            raise InvalidInput(f"{name} contains a NUL character", param=name)
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _route_query_names(request, route)
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {shown(unknown[0])}",
            code="unknown_parameter",
            param=unknown[0],
        )
    repeated = sorted(k for k in known if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise InvalidInput(
            f"query parameter {shown(repeated[0])} is given more than once",
            code="repeated_parameter",
            param=repeated[0],
        )


STRICT_QUERY = [Depends(reject_unknown_query)]


def _read_session(request: Request) -> Iterator[Session]:
    """A read session for the length of the request (writes open their own, so a commit
    lands before the answer is sent)."""
    with read_session(request.app.state.settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(_read_session)]


def found(row: T | None, message: str, *, param: str) -> T:
    """The row that was asked for, or NotFound (another tenant's row is not found either)."""
    if row is None:
        raise NotFound(message, param=param)
    return row


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor listing."""

    rows: list[T]
    has_more: bool


def page_of(rows: list[T], limit: int) -> Page[T]:
    """The page in `limit + 1` rows read after the cursor (the extra row says there is more)."""
    return Page(rows=rows[:limit], has_more=len(rows) > limit)
