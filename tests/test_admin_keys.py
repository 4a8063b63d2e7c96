"""Admin keys, on both databases: an admin key reads every tenant's jobs (list, filter by
tenant, get, results) but writes only within its own tenant; a tenant's key can do none
of that (403 insufficient_scope for the admin-only filter, 404 for another's job)."""

import os
import subprocess
import sys

from sqlalchemy import select

from core.db import read_session, write_session
from core.store.tenants import ADMIN, create_key
from core.tables import ApiKey
from tests.conftest import auth
from tests.test_api import _submit


def _admin(cfg) -> dict[str, str]:
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


def _ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["data"]]


def test_an_admin_key_reads_every_tenants_jobs(api, cfg, alice, bob):
    a = _submit(api, alice).json()["id"]
    b = _submit(api, bob).json()["id"]
    admin = _admin(cfg)
    assert set(_ids(api.get("/v1/jobs", headers=admin))) == {a, b}
    assert _ids(api.get("/v1/jobs", params={"tenant": "alice"}, headers=admin)) == [a]
    bob_id = api.get(f"/v1/jobs/{b}", headers=bob).json()["tenant_id"]
    assert _ids(api.get("/v1/jobs", params={"tenant": bob_id}, headers=admin)) == [b]
    r = api.get("/v1/jobs", params={"tenant": "nobody"}, headers=admin)
    assert r.status_code == 404 and r.json()["error"]["param"] == "tenant"
    got = api.get(f"/v1/jobs/{a}", headers=admin)
    assert got.status_code == 200 and got.json()["id"] == a
    assert got.json()["tenant_id"] != bob_id
    assert api.get(f"/v1/jobs/{a}/results", headers=admin).status_code == 200
    # the cursor pages across tenants too
    first = api.get("/v1/jobs", params={"limit": 1}, headers=admin).json()
    rest = _ids(api.get("/v1/jobs", params={"after": first["next_cursor"]}, headers=admin))
    assert {first["data"][0]["id"], *rest} == {a, b}


def test_an_admin_key_writes_only_in_its_own_tenant(api, cfg, alice):
    a = _submit(api, alice).json()["id"]
    admin = _admin(cfg)
    for path in (f"/v1/jobs/{a}/cancel", f"/v1/jobs/{a}/retry"):
        r = api.post(path, headers=admin)
        assert r.status_code == 404, (path, r.text)
    assert api.get(f"/v1/jobs/{a}", headers=alice).json()["status"] == "queued"
    own = _submit(api, admin).json()
    assert api.post(f"/v1/jobs/{own['id']}/cancel", headers=admin).status_code == 200


def test_a_tenant_key_has_no_admin_scope(api, cfg, alice, bob):
    b = _submit(api, bob).json()["id"]
    for tenant in ("bob", "alice"):
        r = api.get("/v1/jobs", params={"tenant": tenant}, headers=alice)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "insufficient_scope"
    assert api.get(f"/v1/jobs/{b}", headers=alice).status_code == 404
    assert api.get("/v1/jobs", headers=alice).json()["data"] == []


def test_scopes_are_stored_with_the_key(cfg):
    _admin(cfg)
    with write_session(cfg.database_url) as session:
        create_key(session=session, tenant_name="plain")
    with read_session(cfg.database_url) as session:
        scopes = sorted(session.scalars(select(ApiKey.scopes)))
    assert [ADMIN in s.split(",") for s in scopes] == [False, True]


def test_the_cli_creates_an_admin_key(api, cfg, bob):
    b = _submit(api, bob).json()["id"]
    env = {**os.environ, "SLUICE_DATABASE_URL": cfg.database_url}
    made = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", "--tenant", "ops", "--admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "admin key" in made.stderr
    key = made.stdout.strip()
    assert _ids(api.get("/v1/jobs", headers=auth(key))) == [b]
