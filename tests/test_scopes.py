"""Scopes, on both databases, checked over every route the app has (walked, not listed, so a
route added later is covered): a read-only key gets 403 insufficient_scope on every write,
a submit-only key on every read, a tenant's key on every /v1/admin route; and what the key
may do goes through."""

import re

from sqlalchemy import text

from api.http_metrics import _routes
from api.scopes import READ_METHODS
from core.db import get_engine, write_session
from core.store.tenants import create_key
from tests.conftest import auth
from tests.test_api import _submit


def _key(cfg, tenant: str, scopes: list[str]) -> dict[str, str]:
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name=tenant, scopes=scopes)[1])


def _v1_routes(app) -> list[tuple[str, str]]:
    """(method, path with every parameter filled in) of every /v1 route of the app."""
    out = []
    for route in _routes(app.router.routes):
        path = getattr(route, "path", "")
        if not path.startswith("/v1/"):
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            out.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    return out


def _refused(r) -> bool:
    return r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def test_every_write_route_refuses_a_read_only_key(api, cfg):
    read_only = _key(cfg, "alice", ["read"])
    submitter = _key(cfg, "alice", ["read", "submit"])
    writes = [(m, p) for m, p in _v1_routes(api.app) if m not in READ_METHODS]
    # the walk finds the writes there are (and any added later)
    assert {
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/x/cancel"),
        ("POST", "/v1/jobs/x/retry"),
        ("POST", "/v1/files"),
        ("DELETE", "/v1/files/x"),
        ("POST", "/v1/batches"),
        ("POST", "/v1/batches/x/cancel"),
        ("POST", "/v1/admin/keys/x/revoke"),
        ("PATCH", "/v1/admin/tenants/x"),
    } <= set(writes)
    for method, path in writes:
        # a body that would not parse: the scope is checked before any body is read
        r = api.request(method, path, content=b"{not json", headers=read_only)
        assert _refused(r), (method, path, r.status_code, r.text)
        if not path.startswith("/v1/admin"):
            r = api.request(method, path, content=b"{not json", headers=submitter)
            assert not _refused(r), (method, path, r.text)
    # nothing was written by the refused requests
    with get_engine(cfg.database_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0


def test_a_read_only_key_reads_and_a_submit_only_key_writes(api, cfg):
    read_only = _key(cfg, "alice", ["read"])
    submit_only = _key(cfg, "alice", ["submit"])
    job = _submit(api, submit_only)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert api.get(f"/v1/jobs/{job_id}", headers=read_only).json()["id"] == job_id
    assert _refused(api.get(f"/v1/jobs/{job_id}", headers=submit_only))
    assert _refused(api.get("/v1/jobs", headers=submit_only))
    assert _refused(api.post(f"/v1/jobs/{job_id}/cancel", headers=read_only))
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=submit_only).status_code == 200


def test_every_admin_route_needs_the_admin_scope(api, cfg, alice):
    admin = _key(cfg, "ops", ["admin"])
    admin_routes = [(m, p) for m, p in _v1_routes(api.app) if p.startswith("/v1/admin")]
    assert len(admin_routes) >= 10
    for method, path in admin_routes:
        r = api.request(method, path, headers=alice)
        assert _refused(r), (method, path, r.text)
        r = api.request(method, path, headers=admin)
        assert not _refused(r) and r.status_code != 401, (method, path, r.text)


def test_admin_implies_the_other_scopes(api, cfg):
    admin = _key(cfg, "ops", ["admin"])
    listed = api.get("/v1/admin/keys", headers=admin).json()["data"]
    assert listed[0]["scopes"] == ["read", "submit", "admin"]
    assert _submit(api, admin).status_code == 201


def test_unknown_or_no_scopes_are_refused(api, cfg):
    admin = _key(cfg, "ops", ["admin"])
    api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin)
    for scopes in (["write"], [], ["read", "root"]):
        r = api.post("/v1/admin/keys", json={"tenant": "acme", "scopes": scopes}, headers=admin)
        assert r.status_code == 422, (scopes, r.text)
