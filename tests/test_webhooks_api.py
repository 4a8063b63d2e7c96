"""Webhooks through the API in-process, on both databases: a job's or batch's webhook is
checked at submission (400 with a code, nothing created), shown without its secret, and
its delivery log is the tenant's alone."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.db import read_session, write_session
from core.store.tenants import create_key
from core.store.webhook_outbox import PENDING, claim_deliveries
from core.tables import Tenant, WebhookDelivery
from tests.conftest import auth, make_key, worker_ctx
from tests.test_batches import create, upload
from tests.webhook_receiver import Receiver
from worker.webhooks import WebhookSender

SECRET = "whsec_" + base64.b64encode(b"an api test secret of 32 bytes!!").decode()


def _job(api, headers, webhook, **extra):
    body = {"model": "tiny-embed", "inputs": [{"input": "hello"}], "webhook": webhook, **extra}
    return api.post("/v1/jobs", json=body, headers=headers)


def _batch_lines():
    import orjson

    line = {"custom_id": "r0", "method": "POST", "url": "/v1/embeddings"}
    return [orjson.dumps({**line, "body": {"model": "tiny-embed", "input": "hi"}})]


def test_webhooks_are_checked_at_submission(cfg, api, alice):
    cases = [
        ({"url": "ftp://example.com/x", "secret": SECRET}, "invalid_webhook_url"),
        ({"url": "https://u:p@example.com/x", "secret": SECRET}, "invalid_webhook_url"),
        ({"url": "https://example.com/" + "x" * 2048, "secret": SECRET}, "invalid_webhook_url"),
        (
            {"url": "https://example.com/x", "secret": "whsec_dG9vIHNob3J0"},
            "invalid_webhook_secret",
        ),
        ({"url": "https://example.com/x", "secret": "sk-plain"}, "invalid_webhook_secret"),
        ({"url": "http://127.0.0.1:9/x", "secret": SECRET}, "webhook_target_forbidden"),
        ({"url": "http://localhost/x", "secret": SECRET}, "webhook_target_forbidden"),
        ({"url": "http://169.254.169.254/latest", "secret": SECRET}, "webhook_target_forbidden"),
        ({"url": "http://[::1]:8080/", "secret": SECRET}, "webhook_target_forbidden"),
        ({"url": "http://10.0.0.1/", "secret": SECRET}, "webhook_target_forbidden"),
        ({"url": "https://nowhere.invalid/x", "secret": SECRET}, "webhook_host_unresolvable"),
    ]
    file_id = upload(api, alice, _batch_lines())
    for webhook, code in cases:
        r = _job(api, alice, webhook)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (webhook, r.text)
        assert r.json()["error"]["param"].startswith("webhook")
        r = create(api, alice, file_id, webhook=webhook)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (webhook, r.text)
    assert _job(api, alice, {"url": "https://example.com/x"}).status_code == 422
    assert _job(api, alice, {"url": "x", "secret": SECRET, "extra": 1}).status_code == 422
    assert api.get("/v1/jobs", headers=alice).json()["data"] == []
    assert api.get("/v1/batches", headers=alice).json()["data"] == []


@pytest.fixture
def hook_cfg(cfg):
    return cfg.model_copy(
        update={"webhook_allow_private": True, "webhook_retry_base_seconds": 0.01}
    )


@pytest.fixture
def hook_api(hook_cfg):
    with TestClient(create_app(hook_cfg)) as client:
        yield client


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


def _deliver_all(cfg):
    """Deliver every event, retrying failures, as a worker's sender would."""
    sender = WebhookSender(cfg, "api-test")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with read_session(cfg.database_url) as s:
            if (
                s.scalar(select(WebhookDelivery.id).where(WebhookDelivery.status == PENDING))
                is None
            ):
                break
        with write_session(cfg.database_url) as s:
            claims = claim_deliveries(session=s, now=time.time(), lease=10, limit=10, worker="t")
        for claim in claims:
            sender.deliver(claim)
        time.sleep(0.02)
    sender.close()


def test_the_job_view_and_the_delivery_log(hook_cfg, hook_api, receiver):
    api = hook_api
    alice = auth(make_key(hook_cfg.database_url, "alice"))
    bob = auth(make_key(hook_cfg.database_url, "bob"))
    receiver.script = [500]
    r = _job(api, alice, {"url": receiver.url, "secret": SECRET})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["webhook"] == {"url": receiver.url, "has_secret": True}
    log_path = f"/v1/jobs/{job['id']}/webhook_deliveries"
    assert api.get(log_path, headers=alice).json() == {"object": "list", "data": []}
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel", headers=alice)
    assert cancelled.json()["status"] == "cancelled"
    _deliver_all(hook_cfg)
    log = api.get(log_path, headers=alice).json()
    (event,) = log["data"]
    assert event["object"] == "webhook_delivery" and event["event_type"] == "job.cancelled"
    assert event["status"] == "delivered" and event["next_attempt_at"] is None
    assert [a["status_code"] for a in event["attempts"]] == [500, 200]
    assert [a["attempt"] for a in event["attempts"]] == [1, 2]
    assert all(a["duration_seconds"] >= 0 and a["error"] is None for a in event["attempts"])
    assert {r.headers["webhook-id"] for r in receiver.received} == {event["id"]}
    # The secret is never shown back, anywhere.
    for text in (
        r.text,
        cancelled.text,
        api.get(f"/v1/jobs/{job['id']}", headers=alice).text,
        api.get("/v1/jobs", headers=alice).text,
        api.get(log_path, headers=alice).text,
    ):
        assert SECRET not in text and SECRET[6:20] not in text
    # Another tenant sees nothing, and a job is no batch.
    assert api.get(log_path, headers=bob).status_code == 404
    assert api.get(f"/v1/batches/{job['id']}/webhook_deliveries", headers=alice).status_code == 404
    assert api.get("/v1/jobs/job_nope/webhook_deliveries", headers=alice).status_code == 404
    with write_session(hook_cfg.database_url) as s:  # an admin key reads every tenant's
        admin = auth(create_key(session=s, tenant_name="ops", admin=True)[1])
    assert api.get(log_path, headers=admin).json()["data"][0]["id"] == event["id"]
    assert api.get(log_path + "?limit=3", headers=alice).status_code == 400  # no such parameter


def test_a_batchs_webhook(hook_cfg, hook_api, receiver):
    api = hook_api
    alice = auth(make_key(hook_cfg.database_url, "alice"))
    bob = auth(make_key(hook_cfg.database_url, "bob"))
    r = create(
        api,
        alice,
        upload(api, alice, _batch_lines()),
        webhook={"url": receiver.url, "secret": SECRET},
    )
    assert r.status_code == 200, r.text
    batch_id = r.json()["id"]
    assert SECRET not in r.text
    assert api.get(f"/v1/jobs/{batch_id}", headers=alice).json()["webhook"]["has_secret"]
    assert api.post(f"/v1/batches/{batch_id}/cancel", headers=alice).json()["status"] == "cancelled"
    _deliver_all(hook_cfg)
    path = f"/v1/batches/{batch_id}/webhook_deliveries"
    (event,) = api.get(path, headers=alice).json()["data"]
    assert event["event_type"] == "batch.cancelled" and event["status"] == "delivered"
    assert api.get(path, headers=bob).status_code == 404
    assert api.get(f"/v1/jobs/{batch_id}/webhook_deliveries", headers=bob).status_code == 404
    (got,) = receiver.received
    assert got.verified and b'"type":"batch.cancelled"' in got.body


def test_the_cli_sets_a_tenants_default_webhook(cfg, tmp_path):
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("the CLI is database-agnostic; once on SQLite is enough")
    make_key(cfg.database_url, "acme")
    env = {**os.environ, "SLUICE_DATABASE_URL": cfg.database_url}

    def sluice(*args, **extra_env):
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "tenants", "webhook", *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def default():
        with read_session(cfg.database_url) as s:
            t = s.scalar(select(Tenant).where(Tenant.name == "acme"))
            return t.webhook_url, t.webhook_secret

    out = sluice("--tenant", "acme", "--url", "http://127.0.0.1:9/h")
    assert out.returncode == 2 and "webhook_target_forbidden" in out.stderr
    out = sluice(
        "--tenant", "acme", "--url", "http://127.0.0.1:9/h", SLUICE_WEBHOOK_ALLOW_PRIVATE="true"
    )
    assert out.returncode == 0, out.stderr
    assert default() == ("http://127.0.0.1:9/h", out.stdout.strip())
    assert out.stdout.startswith("whsec_")
    url = ("--url", "http://127.0.0.1:9/h")
    out = sluice("--tenant", "acme", *url, "--secret", SECRET, SLUICE_WEBHOOK_ALLOW_PRIVATE="true")
    assert out.returncode == 0 and out.stdout == "" and default()[1] == SECRET
    assert sluice("--tenant", "nobody", "--clear").returncode == 1
    assert sluice("--tenant", "acme").returncode == 2
    assert sluice("--tenant", "acme", "--clear").returncode == 0
    assert default() == (None, None)


def test_a_retry_announces_its_end_to_the_same_webhook(hook_cfg, hook_api, tiny_runner):
    from tests.test_retry_retention import _run_all

    api = hook_api
    alice = auth(make_key(hook_cfg.database_url, "alice"))
    webhook = {"url": "http://127.0.0.1:9/retries", "secret": SECRET}
    inputs = [{"input": "word " * 5000}, {"input": "fine"}]  # the first is too long
    job = _job(api, alice, webhook, inputs=inputs, params={"truncate": False}).json()
    _run_all(hook_cfg, worker_ctx(hook_cfg, tiny_runner))
    retry = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice).json()
    assert retry["webhook"] == {"url": webhook["url"], "has_secret": True}
    _run_all(hook_cfg, worker_ctx(hook_cfg, tiny_runner))
    for job_id in (job["id"], retry["id"]):
        (event,) = api.get(f"/v1/jobs/{job_id}/webhook_deliveries", headers=alice).json()["data"]
        assert event["event_type"] == "job.completed" and event["url"] == webhook["url"]
