"""The dashboard page and the API docs are served from packaged files: nothing they load
comes from another host, every asset they name loads, the page's security policy keeps
the key in, and the package data ships every asset."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"""https?://[^\s"'<>)]+""")
# The one absolute URL the dashboard's script holds is a name, not a place: the SVG
# namespace that document.createElementNS needs.
NAMES = {"http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def client():
    # No database is touched: these routes serve files.
    return TestClient(create_app(Settings(), check_db=False))


def _local_refs(html: str) -> list[str]:
    """The src and href values of a page that point somewhere to load."""
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    refs += re.findall(r"""url:\s*'([^']+)'""", html)  # Swagger UI's spec URL
    return [r for r in refs if not r.startswith(("#", "data:"))]


def test_docs_load_nothing_from_another_host(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert URL.findall(r.text) == []
    refs = _local_refs(r.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(refs)
    assert "/openapi.json" in refs
    for ref in refs:
        got = client.get(ref)
        assert got.status_code == 200 and len(got.content) > 100, ref
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/redoc").status_code == 404  # it would need a CDN: off


def test_the_dashboard_page_is_self_contained(client):
    r = client.get("/dashboard")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    for rule in ("script-src 'self'", "connect-src 'self'", "form-action 'none'"):
        assert rule in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert URL.findall(r.text) == []
    assert re.search(r'<form id="signin" method="post"', r.text)
    assert re.search(r'<input id="api_key" name="api_key" type="password"', r.text)
    assert "<script>" not in r.text  # no inline script: the policy would refuse it anyway
    refs = _local_refs(r.text)
    assets = [ref for ref in refs if ref.startswith("/dashboard/assets/")]
    assert sorted(assets) == ["/dashboard/assets/app.js", "/dashboard/assets/style.css"]
    for ref in assets:
        got = client.get(ref)
        assert got.status_code == 200 and got.content, ref
        assert set(URL.findall(got.text)) <= NAMES, ref
    assert "javascript" in client.get("/dashboard/assets/app.js").headers["content-type"]
    assert client.get("/dashboard/assets/../app.py").status_code == 404
    slash = client.get("/dashboard/", follow_redirects=False)
    assert slash.status_code == 308 and slash.headers["location"] == "/dashboard"


def test_the_script_keeps_the_key_out_of_urls():
    script = (ROOT / "api/static/dashboard/app.js").read_text()
    assert "sessionStorage" in script and "localStorage" not in script
    assert "new EventSource" not in script  # it cannot send the Authorization header
    # the key goes into one place: the Authorization header
    uses = [line.strip() for line in script.splitlines() if "apiKey}" in line]
    assert uses == [
        "const headers = Object.assign({}, options.headers || {}, "
        "{ Authorization: `Bearer ${apiKey}` });"
    ]
    assert "innerHTML" not in script  # server text is set with textContent only


def test_every_asset_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    static = ROOT / "api" / "static"
    files = [p for p in static.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {"index.html", "app.js", "style.css", "swagger-ui-bundle.js"} <= {p.name for p in files}

    def shipped(path: Path) -> bool:
        # package-data globs are relative to their package's folder
        for package, globs in config["package-data"].items():
            folder = ROOT.joinpath(*package.split("."))
            if package in config["packages"] and path.is_relative_to(folder):
                inside = path.relative_to(folder).as_posix()
                if any(fnmatch(inside, g) for g in globs):
                    return True
        return False

    assert [p.relative_to(ROOT).as_posix() for p in files if not shipped(p)] == []
