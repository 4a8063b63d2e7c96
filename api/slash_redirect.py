"""The trailing-slash redirect, without trusting the Host header: Starlette's own builds an
absolute Location from whatever Host a client sends (so a cache or a link could send the
next client elsewhere); this one answers with a path on this server only."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.routing import Match, Mount


def slash_redirect(request: Request) -> RedirectResponse | None:
    """A 307 to the same path with its trailing slash added or removed, when that path is a
    route of the app (a mount's files are not guessed at); None otherwise."""
    path: str = request.scope["path"]
    if path == "/" or "\\" in path:
        return None
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    # "//host" would be read as another host by the client: only a single leading slash.
    if not other.startswith("/") or other.startswith("//"):
        return None
    scope = {**request.scope, "path": other}
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    if not any(r.matches(scope)[0] != Match.NONE for r in routes):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(other + (f"?{query}" if query else ""), status_code=307)
