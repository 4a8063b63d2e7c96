"""Administration from the command line and against a live API process, on both databases:
`sluice tenants create | list | set` and `sluice keys list | revoke | rotate` (audited as
`cli`; mistakes are one or two lines), and a revoked key refused by a running API within
its key-cache time."""

import os
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from core.config import Settings
from core.db import read_session, write_session
from core.store.api_keys import revoke_key
from core.store.audit import CLI
from core.store.tenants import lookup_key
from core.tables import ApiKey, AuditEvent, Tenant
from tests.conftest import auth, make_key
from tests.stack import Stack


def _cli(cfg, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLUICE_DATABASE_URL": cfg.database_url}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr
    return done


def _mistake(done: subprocess.CompletedProcess, code: int, says: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert says in done.stderr and "Traceback" not in done.stderr
    assert 1 <= len(done.stderr.strip().splitlines()) <= 2, done.stderr


def _key_id(cfg, secret: str) -> str:
    with read_session(cfg.database_url) as session:
        return lookup_key(session=session, key=secret, now=time.time()).key_id


def test_the_cli_administers_tenants_and_keys(cfg):
    made = _ok(
        _cli(cfg, "tenants", "create", "acme", "--weight", "3", "--quota", "queued_items=500")
    )
    assert "weight 3" in made.stderr and "queued_items=500" in made.stderr
    _mistake(_cli(cfg, "tenants", "create", "acme"), 1, "tenant_exists")
    _mistake(_cli(cfg, "tenants", "create", "a b"), 2, "invalid_tenant_name")
    _mistake(_cli(cfg, "tenants", "create", "x", "--quota", "nope=1"), 2, "--quota")
    _ok(_cli(cfg, "tenants", "set", "acme", "--quota", "queued_items=default", "--weight", "5"))
    _ok(_cli(cfg, "tenants", "set", "acme", "--disable"))
    _mistake(_cli(cfg, "tenants", "set", "acme"), 2, "nothing to change")
    _mistake(_cli(cfg, "tenants", "set", "nobody", "--enable"), 1, "no tenant 'nobody'")
    listed = _ok(_cli(cfg, "tenants", "list")).stdout
    row = next(line for line in listed.splitlines() if " acme " in line)
    assert "5" in row.split() and "disabled" in row
    with read_session(cfg.database_url) as session:
        acme = session.scalar(select(Tenant).where(Tenant.name == "acme"))
    assert (acme.weight, acme.quota_queued_items, acme.disabled_at is not None) == (5, None, True)

    first = make_key(cfg.database_url, "acme")
    first_id = _key_id(cfg, first)
    keys = _ok(_cli(cfg, "keys", "list", "--tenant", "acme")).stdout
    assert first_id in keys and first[:14] in keys and first not in keys
    assert "read,submit" in keys and "active" in keys and "never" in keys

    rotated = _ok(_cli(cfg, "keys", "rotate", first_id, "--grace", "15m"))
    second = rotated.stdout.strip()
    assert second.startswith("sk-sluice-") and second != first and first_id in rotated.stderr
    with read_session(cfg.database_url) as session:
        old = session.get(ApiKey, first_id)
        assert old.expires_at == pytest.approx(time.time() + 900, abs=60)
    _mistake(_cli(cfg, "keys", "rotate", first_id), 1, "key_rotated")
    _mistake(_cli(cfg, "keys", "rotate", first_id, "--grace", "soon"), 2, "--grace")
    _ok(_cli(cfg, "keys", "revoke", first_id))
    _mistake(_cli(cfg, "keys", "revoke", "key_nope"), 1, "no key 'key_nope'")
    keys = _ok(_cli(cfg, "keys", "list")).stdout
    assert "revoked" in next(line for line in keys.splitlines() if first_id in line)
    assert _key_id(cfg, second) in keys
    third = _ok(_cli(cfg, "keys", "create", "--tenant", "acme")).stdout.strip()

    with read_session(cfg.database_url) as session:
        log = session.execute(select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id))
        assert [tuple(e) for e in log] == [
            ("tenant.create", "cli"),
            ("tenant.update", "cli"),
            ("tenant.disable", "cli"),
            ("key.rotate", "cli"),
            ("key.revoke", "cli"),
            ("key.create", "cli"),
        ]
        created = session.scalar(select(AuditEvent).where(AuditEvent.action == "key.create"))
        assert created.target_id == _key_id(cfg, third) and third not in str(created.details)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_keys_create_with_scopes_a_name_and_an_expiry(cfg):
    made = _ok(
        _cli(
            cfg,
            "keys",
            "create",
            "--tenant",
            "dash",
            "--scope",
            "read",
            "--name",
            "dashboards",
            "--expires-in-days",
            "2",
        )
    )
    assert "scopes read, expiring in 2 days" in made.stderr
    with read_session(cfg.database_url) as session:
        key = session.get(ApiKey, _key_id(cfg, made.stdout.strip()))
        assert (key.scopes, key.name) == ("read", "dashboards")
        assert key.expires_at == pytest.approx(time.time() + 2 * 86400, abs=60)
    both = _ok(
        _cli(cfg, "keys", "create", "--tenant", "dash", "--scope", "submit", "--scope", "read")
    )
    assert "scopes read, submit;" in both.stderr
    _mistake(_cli(cfg, "keys", "create", "--tenant", "dash", "--scope", "root"), 2, "unknown scope")
    _mistake(
        _cli(cfg, "keys", "create", "--tenant", "dash", "--admin", "--scope", "read"), 2, "not both"
    )
    _mistake(
        _cli(cfg, "keys", "create", "--tenant", "dash", "--expires-in-days", "0"),
        2,
        "--expires-in-days",
    )


def test_an_outdated_schema_is_one_line(tmp_path):
    cfg = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    _mistake(_cli(cfg, "keys", "list"), 1, "sluice migrate")


def test_the_key_cache_time_is_at_most_ten_seconds():
    with pytest.raises(ValidationError):
        Settings(key_cache_seconds=11)


def test_a_live_api_refuses_a_revoked_key_within_its_key_cache_time(cfg, tmp_path):
    cache_seconds = 2.0
    stack = Stack(cfg, tmp_path / "logs", make_key(cfg.database_url, "e2e"))
    stack.env["SLUICE_KEY_CACHE_SECONDS"] = str(cache_seconds)
    try:
        stack.start_api()
        key = make_key(cfg.database_url, "alice")
        headers = auth(key)
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            assert http.get("/v1/jobs", headers=headers).status_code == 200  # now cached
            # revoked as another process would (the CLI): the API hears nothing of it
            with write_session(cfg.database_url) as session:
                revoke_key(session=session, key_id=_key_id(cfg, key), actor=CLI, now=time.time())
            revoked_at = time.monotonic()
            # the cached check still serves it, for at most the cache's time
            assert http.get("/v1/jobs", headers=headers).status_code == 200
            while True:
                r = http.get("/v1/jobs", headers=headers)
                waited = time.monotonic() - revoked_at
                if r.status_code != 200:
                    break
                assert waited < cache_seconds + 1.0, "a revoked key outlived the key cache"
                time.sleep(0.05)
            assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"
            assert waited <= cache_seconds + 1.0
            # and stays refused (now from the cache of refusals)
            assert http.get("/v1/jobs", headers=headers).status_code == 401
    finally:
        stack.close()
