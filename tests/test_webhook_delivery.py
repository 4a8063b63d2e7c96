"""Webhook delivery in-process on both databases, against a local receiver that checks
every signature with the `standardwebhooks` package: retries with the same webhook-id
until a 2xx, no redirects followed, timeouts, the SSRF guard at delivery time, giving up."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from sqlalchemy import select

from core.config import Settings
from core.db import read_session, write_session
from core.store.jobs import JobSpec, cancel_job, create_job
from core.store.tenants import get_or_create_tenant
from core.store.webhook_outbox import (
    DELIVERED,
    FAILED,
    PENDING,
    DeliveryClaim,
    claim_deliveries,
)
from core.submit.jobs import job_chunk_rows
from core.tables import WebhookAttempt, WebhookDelivery
from core.webhooks.targets import WebhookTarget
from tests.webhook_receiver import HANG, Receiver
from worker.webhooks import WebhookSender

SECRET = "whsec_" + base64.b64encode(b"s3cr3t-bytes-of-the-receiver!!!!").decode()


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


@pytest.fixture
def hook_cfg(cfg):
    return cfg.model_copy(
        update={
            "webhook_allow_private": True,
            "webhook_retry_base_seconds": 0.05,
            "webhook_timeout_seconds": 2.0,
            "webhook_lease_seconds": 10.0,
        }
    )


def _ended_job(cfg, url):
    with write_session(cfg.database_url) as s:
        tenant = get_or_create_tenant(session=s, name="hooked")
        spec = JobSpec(
            model="m", task="embed", items=[(None, "x")], webhook=WebhookTarget(url, SECRET)
        )
        job = create_job(session=s, tenant_id=tenant.id, spec=spec, chunks=job_chunk_rows(spec))
        cancel_job(session=s, tenant_id=tenant.id, job_id=job.id)
        return job.id


def _attempt_once(cfg, sender, now=None):
    """Claim what is due and deliver it on this thread; the outcomes."""
    with write_session(cfg.database_url) as s:
        claims = claim_deliveries(
            session=s, now=now or time.time(), lease=10, limit=10, worker="test"
        )
    return [sender.deliver(c) for c in claims]


def _delivery(cfg):
    with read_session(cfg.database_url) as s:
        event = s.scalar(select(WebhookDelivery))
        attempts = list(s.scalars(select(WebhookAttempt).order_by(WebhookAttempt.attempt)))
    return event, attempts


def test_two_failures_then_exactly_one_delivery_with_one_id(hook_cfg, receiver):
    receiver.script = [500, 502]
    job_id = _ended_job(hook_cfg, receiver.url)
    sender = WebhookSender(hook_cfg, "test")
    outcomes = []
    deadline = time.monotonic() + 30
    while DELIVERED not in outcomes and time.monotonic() < deadline:
        outcomes += _attempt_once(hook_cfg, sender)
        time.sleep(0.02)
    assert outcomes == [PENDING, PENDING, DELIVERED]
    assert _attempt_once(hook_cfg, sender, now=time.time() + 86400) == []  # nothing more
    got = receiver.wait_for(3)
    assert len(got) == 3 and all(r.verified for r in got)
    assert [r.answered for r in got] == [500, 502, 200]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1  # the same bytes every time
    body = orjson.loads(got[0].body)
    assert body["type"] == "job.cancelled" and body["data"]["id"] == job_id
    assert body["id"] == got[0].headers["webhook-id"]
    event, attempts = _delivery(hook_cfg)
    assert event.status == DELIVERED and event.attempts == 3
    assert [a.status_code for a in attempts] == [500, 502, 200]
    assert all(a.finished_at >= a.started_at for a in attempts)
    # retries were backed off: each try came after the previous one's delay
    assert attempts[1].started_at - attempts[0].finished_at >= 0.025
    sender.close()


def test_the_housekeeper_path_delivers_on_its_threads(hook_cfg, receiver):
    receiver.script = [500]
    _ended_job(hook_cfg, receiver.url)
    sender = WebhookSender(hook_cfg, "test")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _delivery(hook_cfg)[0].status != DELIVERED:
        sender.deliver_due(time.time())
        time.sleep(0.05)
    assert _delivery(hook_cfg)[0].status == DELIVERED
    assert [r.answered for r in receiver.wait_for(2)] == [500, 200]
    sender.close()


def test_redirects_are_not_followed(hook_cfg, receiver):
    receiver.script = [307]
    _ended_job(hook_cfg, receiver.url)
    sender = WebhookSender(hook_cfg, "test")
    assert _attempt_once(hook_cfg, sender) == [PENDING]
    time.sleep(0.3)
    assert len(receiver.received) == 1  # the Location was not fetched
    assert _delivery(hook_cfg)[1][0].status_code == 307
    sender.close()


def test_a_receiver_that_never_answers_times_out(hook_cfg, receiver):
    receiver.script = [HANG]
    cfg = hook_cfg.model_copy(update={"webhook_timeout_seconds": 0.5})
    _ended_job(cfg, receiver.url)
    sender = WebhookSender(cfg, "test")
    assert _attempt_once(cfg, sender) == [PENDING]
    attempt = _delivery(cfg)[1][0]
    assert attempt.status_code is None and attempt.error.startswith("timeout")
    receiver.release()
    sender.close()


def test_the_ssrf_guard_holds_at_delivery_time(hook_cfg, receiver):
    # Accepted while private targets were allowed; the worker's settings refuse them.
    _ended_job(hook_cfg, receiver.url)
    strict = hook_cfg.model_copy(update={"webhook_allow_private": False})
    sender = WebhookSender(strict, "test")
    assert _attempt_once(strict, sender) == [PENDING]
    time.sleep(0.2)
    assert receiver.received == []
    attempt = _delivery(strict)[1][0]
    assert attempt.status_code is None
    assert attempt.error.startswith("webhook_target_forbidden") and "loopback" in attempt.error
    sender.close()


def test_no_retry_after_the_window(hook_cfg, receiver):
    receiver.script = [500]
    cfg = hook_cfg.model_copy(update={"webhook_retry_window_seconds": 0.01})
    _ended_job(cfg, receiver.url)
    time.sleep(0.02)
    sender = WebhookSender(cfg, "test")
    assert _attempt_once(cfg, sender) == [FAILED]
    event, attempts = _delivery(cfg)
    assert event.status == FAILED and [a.status_code for a in attempts] == [500]
    assert _attempt_once(cfg, sender, now=time.time() + 86400) == []
    sender.close()


def test_the_connection_goes_to_the_address_checked():
    strict = Settings(webhook_allow_private=False)
    answers = {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::"]}
    sender = WebhookSender(strict, "test", resolve=lambda host, port: answers[host])
    claim = DeliveryClaim(
        delivery_id="msg_1",
        token="t",
        attempt_id=1,
        attempt=1,
        url="https://hooks.example.com:8443/in?x=1",
        secret=SECRET,
        body=b'{"type":"job.completed"}',
        created_at=time.time(),
    )
    request = sender.request(claim)
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["webhook-id"] == "msg_1" and request.content == claim.body
    # DNS now answers with a private address (rebinding): refused before any connection.
    answers["hooks.example.com"] = ["10.0.0.5"]
    assert sender.send(claim)[1].startswith("webhook_target_forbidden")
    sender.close()
