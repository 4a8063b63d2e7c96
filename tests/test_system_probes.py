"""Health and readiness probes and the trailing-slash redirect, in-process on both
databases: HEAD /healthz answers; /readyz checks the schema once at start-up, not per call
(it pings, reports models without a live worker without failing, logs nothing, and
shares one probe a second); a redirect never names the Host a client sent."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import event

from core.constants import workers_key
from core.db import get_engine
from core.redis_client import get_redis


def test_head_healthz_is_200(api):
    r = api.head("/healthz")
    assert r.status_code == 200 and r.content == b""
    assert api.head("/readyz").status_code == 200


def test_readyz_reports_services_schema_and_models_without_workers(api, cfg):
    body = api.get("/readyz").json()
    assert body["status"] == "ready" and body["database"] == "ok" and body["redis"] == "ok"
    assert body["schema"] == "ok"  # checked when the app started
    assert "tiny-embed" in body["models_without_workers"]
    # A worker's heartbeat, as the housekeeper writes it: the model is served now.
    get_redis(cfg.redis_url).zadd(workers_key(cfg.redis_prefix, "tiny-embed"), {"w1": time.time()})
    api.app.state.readiness.max_age = 0
    body = api.get("/readyz").json()
    assert body["status"] == "ready"
    assert "tiny-embed" not in body["models_without_workers"]
    assert "all-minilm-l6-v2" in body["models_without_workers"]


@pytest.fixture
def statements(cfg):
    """Every SQL statement the app's engine runs while the test does."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = get_engine(cfg.database_url)
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_readyz_pings_without_a_schema_check_and_shares_one_probe(api, statements):
    api.app.state.readiness.max_age = 0
    for _ in range(3):
        assert api.get("/readyz").status_code == 200
    assert statements, "the database was not pinged"
    assert not [s for s in statements if "alembic_version" in s], statements
    # One SELECT 1 per probe (SQLite's engine adds its BEGIN).
    assert [s for s in statements if s != "BEGIN"] == ["SELECT 1"] * 3
    api.app.state.readiness.max_age = 60
    api.get("/readyz")
    before = len(statements)
    for _ in range(5):
        assert api.get("/readyz").status_code == 200
    assert len(statements) == before  # within max_age the last probe is the answer


def test_readyz_logs_nothing(api, caplog):
    api.app.state.readiness.max_age = 0
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            api.get("/readyz")
    own = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert own == [], [r.getMessage() for r in own]


def test_trailing_slash_redirect_does_not_echo_the_host(api, alice):
    r = api.get(
        "/v1/jobs/?limit=2",
        headers={**alice, "Host": "evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 307
    assert r.headers["location"] == "/v1/jobs?limit=2"
    r = api.get("/healthz/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/healthz"
    assert api.get("/healthz/").json() == {"status": "ok"}  # the redirect is followed


@pytest.mark.parametrize("path", ["//evil.example/", "/v1/nowhere/", "/dashboard/assets/x/"])
def test_no_redirect_where_no_route_is(api, alice, path):
    r = api.get(path, headers={**alice, "Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404
    assert "location" not in r.headers
