"""Which scope a request needs, decided from its method and path alone, before routing and
before its body is read: `admin` for /v1/admin, `read` for the other reads, `submit` for
every other method. A write route added later cannot forget the check: it has none of its
own to forget."""

from __future__ import annotations

from core.errors import Forbidden
from core.store.tenants import ADMIN, READ, SUBMIT, Caller

ADMIN_PREFIX = "/v1/admin"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(method: str, path: str) -> str:
    """The scope a /v1 request needs."""
    if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
        return ADMIN
    return READ if method.upper() in READ_METHODS else SUBMIT


def check_scope(caller: Caller, method: str, path: str) -> None:
    """Forbidden (insufficient_scope) unless the caller's key has the scope the request
    needs."""
    scope = required_scope(method, path)
    if caller.allows(scope):
        return
    what = "an admin key" if scope == ADMIN else f"a key with the `{scope}` scope"
    raise Forbidden(
        f"{method.upper()} {path} needs {what}; this key has {', '.join(sorted(caller.scopes))}",
        details={"required_scope": scope, "key_scopes": sorted(caller.scopes)},
    )
