"""The audit log in-process, on both databases: what is recorded (admin actions, uses of
revoked and expired keys, cancels), paging and filters for admins, a tenant's own view
(never another tenant's entries or keys), and that no secret is ever stored."""

import json
import time

import pytest
from sqlalchemy import select

from core.db import read_session, write_session
from core.store.tenants import create_key, hash_key
from core.tables import AuditEvent
from tests.conftest import auth
from tests.test_api import _submit
from tests.test_batches import EMBED, create, request, upload


@pytest.fixture
def admin(cfg) -> dict[str, str]:
    """An admin key of tenant ops, as a header."""
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


def _ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _all(api, headers, path: str, **params) -> list[dict]:
    """Every entry, read two at a time through the cursor."""
    out: list[dict] = []
    after = None
    while True:
        cursor = {} if after is None else {"after": after}
        page = _ok(api.get(path, params={**params, **cursor, "limit": 2}, headers=headers))
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["next_cursor"]


def _tenant_id(api, admin, name: str) -> str:
    return _ok(api.get(f"/v1/admin/tenants/{name}", headers=admin))["id"]


def test_admin_actions_key_refusals_and_cancels_are_recorded(api, cfg, admin, alice, bob):
    secrets: list[str] = []
    _ok(api.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin), 201)
    made = _ok(api.post("/v1/admin/keys", json={"tenant": "acme"}, headers=admin), 201)
    secrets.append(made["key"])
    _ok(api.patch("/v1/admin/tenants/acme", json={"weight": 4}, headers=admin))
    _ok(api.patch("/v1/admin/tenants/acme", json={"weight": 4}, headers=admin))  # no change
    rotation = _ok(api.post(f"/v1/admin/keys/{made['id']}/rotate", headers=admin))
    secrets.append(rotation["key"]["key"])
    _ok(api.post(f"/v1/admin/keys/{rotation['key']['id']}/revoke", headers=admin))
    for _ in range(3):  # one entry, however often a revoked key knocks
        assert api.get("/v1/jobs", headers=auth(rotation["key"]["key"])).status_code == 401
    expiring = _ok(
        api.post(
            "/v1/admin/keys",
            json={"tenant": "acme", "expires_at": time.time() + 0.5},
            headers=admin,
        ),
        201,
    )
    secrets.append(expiring["key"])
    time.sleep(max(0.0, expiring["expires_at"] - time.time()) + 0.1)
    assert api.get("/v1/jobs", headers=auth(expiring["key"])).status_code == 401
    _ok(api.post("/v1/admin/tenants/acme/disable", headers=admin))
    _ok(api.post("/v1/admin/tenants/acme/enable", headers=admin))

    job = _ok(_submit(api, alice), 201)["id"]
    for _ in range(2):  # the second cancel changes nothing and is not recorded
        _ok(api.post(f"/v1/jobs/{job}/cancel", headers=alice))
    batch = _ok(
        create(
            api, bob, upload(api, bob, [request("a", EMBED, {"model": "tiny-embed", "input": "x"})])
        ),
    )["id"]
    _ok(api.post(f"/v1/batches/{batch}/cancel", headers=bob))

    log = _all(api, admin, "/v1/admin/audit")
    assert [e["id"] for e in log] == sorted((e["id"] for e in log), reverse=True)
    actions = [e["action"] for e in reversed(log)]
    assert actions == [
        "tenant.create",
        "key.create",
        "tenant.update",
        "key.rotate",
        "key.revoke",
        "key.use_revoked",
        "key.create",
        "key.use_expired",
        "tenant.disable",
        "tenant.enable",
        "job.cancel",
        "batch.cancel",
    ]
    by_action = {e["action"]: e for e in log}
    assert by_action["tenant.update"]["details"] == {"changes": {"weight": [1, 4]}}
    assert by_action["key.rotate"]["details"]["new_key_id"] == rotation["key"]["id"]
    assert by_action["key.use_revoked"]["actor"] == rotation["key"]["id"]
    assert by_action["job.cancel"]["target_id"] == job
    assert by_action["batch.cancel"]["target_id"] == batch

    # filters: a tenant's, an action's, both; an unknown tenant or action is refused
    acme = _tenant_id(api, admin, "acme")
    assert {e["tenant_id"] for e in _all(api, admin, "/v1/admin/audit", tenant="acme")} == {acme}
    assert len(_all(api, admin, "/v1/admin/audit", tenant=acme)) == 10
    cancels = _all(api, admin, "/v1/admin/audit", action="job.cancel")
    assert [e["target_id"] for e in cancels] == [job]
    assert _all(api, admin, "/v1/admin/audit", action="job.cancel", tenant="acme") == []
    r = api.get("/v1/admin/audit", params={"tenant": "nobody"}, headers=admin)
    assert r.status_code == 404 and r.json()["error"]["param"] == "tenant"
    assert api.get("/v1/admin/audit", params={"action": "x"}, headers=admin).status_code == 422

    # no secret, nor the hash it is stored as, is ever in the log
    with read_session(cfg.database_url) as session:
        stored = json.dumps(
            [
                [e.action, e.actor, e.target_id, e.details]
                for e in session.scalars(select(AuditEvent))
            ]
        )
    for secret in secrets:
        assert secret not in stored and hash_key(secret) not in stored
        assert secret[len("sk-sluice-") + 4 :] not in stored


def test_a_tenant_sees_only_its_own_keys_and_entries(api, cfg, admin, alice, bob):
    a_job = _ok(_submit(api, alice), 201)["id"]
    b_job = _ok(_submit(api, bob), 201)["id"]
    _ok(api.post(f"/v1/jobs/{a_job}/cancel", headers=alice))
    _ok(api.post(f"/v1/jobs/{b_job}/cancel", headers=bob))
    _ok(api.patch("/v1/admin/tenants/alice", json={"weight": 2}, headers=admin))
    _ok(api.patch("/v1/admin/tenants/bob", json={"weight": 3}, headers=admin))
    extra = _ok(api.post("/v1/admin/keys", json={"tenant": "alice"}, headers=admin), 201)
    alice_id, bob_id = _tenant_id(api, admin, "alice"), _tenant_id(api, admin, "bob")

    mine = _all(api, alice, "/v1/audit")
    assert {e["tenant_id"] for e in mine} == {alice_id}
    assert {e["action"] for e in mine} == {"job.cancel", "tenant.update", "key.create"}
    assert b_job not in json.dumps(mine)
    # an operator's key shows as `admin`, never as the other tenant's key id
    assert {e["actor"] for e in mine if e["action"] != "job.cancel"} == {"admin"}
    assert [e["target_id"] for e in _all(api, alice, "/v1/audit", action="job.cancel")] == [a_job]
    assert {e["tenant_id"] for e in _all(api, bob, "/v1/audit")} == {bob_id}

    keys = _all(api, alice, "/v1/keys")
    assert {k["tenant_id"] for k in keys} == {alice_id} and len(keys) == 2
    assert extra["id"] in {k["id"] for k in keys}
    assert all("key" not in k for k in keys)
    assert {k["tenant_id"] for k in _all(api, bob, "/v1/keys")} == {bob_id}
    # the admin routes stay closed to them, whatever they ask
    for path, params in (
        ("/v1/admin/audit", {"tenant": "bob"}),
        ("/v1/admin/keys", {"tenant": "bob"}),
        (f"/v1/admin/keys/{extra['id']}", None),
    ):
        r = api.get(path, params=params, headers=alice)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
