"""The dashboard's page at /dashboard: one HTML page, a script and a style sheet packaged
with sluice (api/static/dashboard), no CDN and no build step. The page reads only the
public API with the key it is given; this module serves its files, under a content
security policy that lets the page load nothing and talk to nothing but this server."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).parent / "static" / "dashboard"
PAGE_PATH = "/dashboard"
ASSETS_PATH = "/dashboard/assets"
# Scripts and styles from this server only (no inline script can run, so an injected
# string cannot read the key); fetch() to this server only; no forms are ever submitted
# (sign-in is handled by the script); no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def _template() -> str:
    return (DASHBOARD_DIR / "index.html").read_text(encoding="utf-8")


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard page and its assets."""
    app.mount(ASSETS_PATH, StaticFiles(directory=DASHBOARD_DIR), name="dashboard-assets")

    @app.get(PAGE_PATH, include_in_schema=False)
    def dashboard(request: Request) -> HTMLResponse:
        # The root path comes from the server's own configuration (a proxy prefix), never
        # from the request's URL; it prefixes the asset and API paths.
        root = request.scope.get("root_path", "").rstrip("/")
        page = _template().replace("{{root}}", html.escape(root, quote=True))
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get(PAGE_PATH + "/", include_in_schema=False)
    def dashboard_slash(request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}{PAGE_PATH}", status_code=308)
