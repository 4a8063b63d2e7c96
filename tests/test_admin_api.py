"""The /v1/admin routes in-process, on both databases: tenants (create, list, update, disable),
keys (create, list, revoke, rotate, expiry), and the errors each gives."""

import time

import pytest

from core.db import write_session
from core.store.tenants import create_key
from tests.conftest import auth
from tests.test_api import _submit


@pytest.fixture
def admin(cfg) -> dict[str, str]:
    """An admin key of tenant ops, as a header."""
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


def _ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _error(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def _new_key(api, admin, tenant: str, **body) -> tuple[dict, dict[str, str]]:
    made = _ok(api.post("/v1/admin/keys", json={"tenant": tenant, **body}, headers=admin), 201)
    return made, auth(made["key"])


def _last_used(api, admin, key_id: str) -> float | None:
    """The key's last use once it is written (in the background, after the request)."""
    deadline = time.monotonic() + 10
    while True:
        shown = _ok(api.get(f"/v1/admin/keys/{key_id}", headers=admin))["last_used_at"]
        if shown is not None or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


def test_tenants_are_created_listed_and_updated(api, admin):
    made = _ok(
        api.post(
            "/v1/admin/tenants",
            json={"name": "acme", "weight": 3, "quotas": {"queued_items": 1000}},
            headers=admin,
        ),
        201,
    )
    assert made["weight"] == 3 and made["disabled"] is False
    assert made["quotas"] == {
        "queued_items": 1000,
        "concurrent_jobs": None,
        "stored_bytes": None,
        "uploads_per_minute": None,
        "submissions_per_minute": None,
    }
    taken = api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin)
    assert _error(taken, 409) == "tenant_exists"
    for bad in (
        {"name": "a b"},
        {"name": ""},
        {"name": "x", "weight": 0},
        {"name": "y", "weight": 101},
    ):
        assert (
            _error(api.post("/v1/admin/tenants", json=bad, headers=admin), 422) == "invalid_request"
        )
    for name in ("beta", "gamma"):
        _ok(api.post("/v1/admin/tenants", json={"name": name}, headers=admin), 201)

    first = _ok(api.get("/v1/admin/tenants", params={"limit": 2}, headers=admin))
    assert [t["name"] for t in first["data"]] == ["acme", "beta"] and first["has_more"]
    rest = _ok(api.get("/v1/admin/tenants", params={"after": first["next_cursor"]}, headers=admin))
    assert [t["name"] for t in rest["data"]] == ["gamma", "ops"] and not rest["has_more"]
    assert _ok(api.get(f"/v1/admin/tenants/{made['id']}", headers=admin))["name"] == "acme"
    assert _error(api.get("/v1/admin/tenants/nobody", headers=admin), 404) == "not_found"

    # named quotas change, null goes back to the default, the rest stays
    body = {"weight": 7, "quotas": {"stored_bytes": 1 << 30, "queued_items": None}}
    updated = _ok(api.patch("/v1/admin/tenants/acme", json=body, headers=admin))
    assert updated["weight"] == 7
    assert updated["quotas"]["stored_bytes"] == 1 << 30
    assert updated["quotas"]["queued_items"] is None
    again = _ok(api.patch("/v1/admin/tenants/acme", json={"quotas": {}}, headers=admin))
    assert again["weight"] == 7 and again["quotas"]["stored_bytes"] == 1 << 30
    for bad in ({"weight": 0}, {"weight": 101}, {"quotas": {"stored_bytes": -1}}, {"x": 1}):
        r = api.patch("/v1/admin/tenants/acme", json=bad, headers=admin)
        assert _error(r, 422) == "invalid_request", bad
    assert _error(api.patch("/v1/admin/tenants/nobody", json={}, headers=admin), 404)


def test_a_disabled_tenants_keys_are_refused_until_it_is_enabled(api, admin, alice):
    job = _ok(_submit(api, alice), 201)
    disabled = _ok(api.post("/v1/admin/tenants/alice/disable", headers=admin))
    assert disabled["disabled"] is True and disabled["disabled_at"] is not None
    # at once on this process (the others within the key cache's time)
    for r in (api.get("/v1/jobs", headers=alice), _submit(api, alice)):
        assert _error(r, 403) == "tenant_disabled"
    # the job stays, the admin still sees it
    assert _ok(api.get(f"/v1/jobs/{job['id']}", headers=admin))["status"] == "queued"
    _ok(api.post("/v1/admin/tenants/alice/enable", headers=admin))
    assert _ok(api.get("/v1/jobs", headers=alice))["data"][0]["id"] == job["id"]
    # an admin cannot lock itself out
    assert _error(api.post("/v1/admin/tenants/ops/disable", headers=admin), 409) == "own_tenant"


def test_keys_are_created_listed_and_revoked(api, admin):
    _ok(api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin), 201)
    made, key = _new_key(api, admin, "acme", scopes=["read"], name="dashboard")
    assert made["key"].startswith(made["prefix"]) and made["scopes"] == ["read"]
    assert made["status"] == "active" and made["name"] == "dashboard"
    assert _error(api.post("/v1/jobs", json={}, headers=key), 403) == "insufficient_scope"
    assert _ok(api.get("/v1/jobs", headers=key))["data"] == []

    listed = _ok(api.get("/v1/admin/keys", params={"tenant": "acme"}, headers=admin))["data"]
    assert [k["id"] for k in listed] == [made["id"]]
    shown = listed[0]
    assert "key" not in shown and made["key"] not in str(listed)
    assert _last_used(api, admin, made["id"]) is not None  # it was used above
    assert set(shown) >= {"prefix", "scopes", "created_at", "expires_at", "revoked_at"}
    every = _ok(api.get("/v1/admin/keys", headers=admin))["data"]
    assert {k["tenant"] for k in every} == {"acme", "ops"}
    assert _error(api.get("/v1/admin/keys", params={"tenant": "nope"}, headers=admin), 404)
    assert (
        _error(api.post("/v1/admin/keys", json={"tenant": "nope"}, headers=admin), 404)
        == "not_found"
    )

    revoked = _ok(api.post(f"/v1/admin/keys/{made['id']}/revoke", headers=admin))
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert _error(api.get("/v1/jobs", headers=key), 401) == "revoked_api_key"
    again = _ok(api.post(f"/v1/admin/keys/{made['id']}/revoke", headers=admin))
    assert again["revoked_at"] == revoked["revoked_at"]
    assert _error(api.post("/v1/admin/keys/key_nope/revoke", headers=admin), 404) == "not_found"
    rotated = api.post(f"/v1/admin/keys/{made['id']}/rotate", headers=admin)
    assert _error(rotated, 409) == "key_revoked"


def test_a_rotated_key_works_for_its_grace_then_stops(api, admin):
    _ok(api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin), 201)
    old, old_key = _new_key(api, admin, "acme", scopes=["read", "submit"], name="ci")
    _ok(api.get("/v1/jobs", headers=old_key))  # cached as valid, with no expiry
    body = {"grace_seconds": 1.5}
    rotation = _ok(api.post(f"/v1/admin/keys/{old['id']}/rotate", json=body, headers=admin))
    new, previous = rotation["key"], rotation["previous"]
    assert new["key"] != old["key"] and new["id"] != old["id"]
    assert (new["scopes"], new["name"], new["tenant"]) == (["read", "submit"], "ci", "acme")
    assert previous["replaced_by"] == new["id"]
    assert previous["expires_at"] == pytest.approx(time.time() + 1.5, abs=1.0)
    assert _ok(api.get("/v1/jobs", headers=old_key))["data"] == []  # within its grace
    assert _ok(_submit(api, auth(new["key"])), 201)
    again = api.post(f"/v1/admin/keys/{old['id']}/rotate", headers=admin)
    assert _error(again, 409) == "key_rotated"
    time.sleep(max(0.0, previous["expires_at"] - time.time()) + 0.1)
    assert _error(api.get("/v1/jobs", headers=old_key), 401) == "expired_api_key"
    assert _ok(api.get("/v1/jobs", headers=auth(new["key"])))["data"]
    assert _error(api.post(f"/v1/admin/keys/{old['id']}/rotate", headers=admin), 409) == (
        "key_expired"
    )
    # the default grace is the setting's (a day)
    other, _ = _new_key(api, admin, "acme")
    later = _ok(api.post(f"/v1/admin/keys/{other['id']}/rotate", headers=admin))["previous"]
    assert later["expires_at"] == pytest.approx(time.time() + 86400, abs=5)
    bad = api.post(
        f"/v1/admin/keys/{other['id']}/rotate", json={"grace_seconds": -1}, headers=admin
    )
    assert _error(bad, 422) == "invalid_request"


def test_a_key_stops_at_its_expiry(api, admin):
    _ok(api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin), 201)
    made, key = _new_key(api, admin, "acme", expires_at=time.time() + 1.0)
    assert made["expires_at"] is not None
    _ok(api.get("/v1/jobs", headers=key))  # cached: the cache still honours the expiry
    time.sleep(max(0.0, made["expires_at"] - time.time()) + 0.1)
    for _ in range(3):
        assert _error(api.get("/v1/jobs", headers=key), 401) == "expired_api_key"
    listed = _ok(api.get(f"/v1/admin/keys/{made['id']}", headers=admin))
    assert listed["status"] == "expired"
    in_days, _ = _new_key(api, admin, "acme", expires_in_days=2)
    assert in_days["expires_at"] == pytest.approx(time.time() + 2 * 86400, abs=5)
    for bad in (
        {"expires_at": time.time() - 1},
        {"expires_at": time.time() + 60, "expires_in_days": 1},
        {"expires_in_days": 0},
    ):
        r = api.post("/v1/admin/keys", json={"tenant": "acme", **bad}, headers=admin)
        assert _error(r, 422) == "invalid_request", bad
