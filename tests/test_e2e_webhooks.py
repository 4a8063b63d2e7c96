"""Webhooks end to end: real API and worker processes deliver a job's and a batch's end to a
local receiver that checks every signature; a receiver that fails twice gets the event
exactly once more, with one webhook-id; a worker killed mid-delivery loses nothing."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from openai import OpenAI
from sqlalchemy import select

from core.db import read_session
from core.tables import WebhookAttempt
from tests.conftest import make_key
from tests.stack import TERMINAL, Stack
from tests.webhook_receiver import HANG, Receiver

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + base64.b64encode(b"the end-to-end webhook secret!!!").decode()


@pytest.fixture
def hook_cfg(cfg):
    return cfg.model_copy(
        update={
            "webhook_allow_private": True,  # the receiver is on loopback
            "webhook_retry_base_seconds": 0.2,
            "webhook_timeout_seconds": 4.0,
            "webhook_lease_seconds": 5.0,
            "webhook_poll_seconds": 0.2,
        }
    )


@pytest.fixture
def hook_stack(hook_cfg, tmp_path):
    s = Stack(hook_cfg, tmp_path / "logs", make_key(hook_cfg.database_url, "hooked"))
    s.start_api()
    yield s
    s.close()


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


def _log(stack, path):
    r = stack.http.get(path)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_failing_receiver_gets_the_event_exactly_once_more(hook_stack, receiver):
    receiver.script = [500, 503]
    hook_stack.start_worker("tiny-embed")
    job = hook_stack.submit(
        [f"text {i}" for i in range(40)],
        "tiny-embed",
        webhook={"url": receiver.url, "secret": SECRET},
    )
    job = hook_stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
    assert job["status"] == "completed"
    got = receiver.wait_for(3)
    time.sleep(2.0)  # ten polls more: nothing else may arrive
    assert len(receiver.received) == 3
    assert [r.answered for r in got] == [500, 503, 200]
    assert all(r.verified for r in got)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in got]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60
    (event,) = _log(hook_stack, f"/v1/jobs/{job['id']}/webhook_deliveries")
    assert event["id"] == got[0].headers["webhook-id"] and event["event_type"] == "job.completed"
    assert event["status"] == "delivered"
    assert [a["status_code"] for a in event["attempts"]] == [500, 503, 200]
    body = orjson.loads(got[0].body)
    assert body["data"] == {
        "id": job["id"],
        "object": "job",
        "status": "completed",
        "counts": {"total": 40, "completed": 40, "failed": 0},
    }


def test_a_batchs_event_unwraps_with_openais_client(hook_stack, receiver):
    hook_stack.start_worker("tiny-embed")
    client = OpenAI(api_key=hook_stack.key, base_url=f"{hook_stack.url}/v1", webhook_secret=SECRET)
    lines = b"".join(
        orjson.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "tiny-embed", "input": f"text {i}"},
            }
        )
        + b"\n"
        for i in range(30)
    )
    file = client.files.create(file=("b.jsonl", lines), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint="/v1/embeddings",
        completion_window="24h",
        extra_body={"webhook": {"url": receiver.url, "secret": SECRET}},
    )
    (got,) = receiver.wait_for(1, timeout=240)
    event = client.webhooks.unwrap(got.body, got.headers)
    assert event.type == "batch.completed" and event.data.id == batch.id
    assert client.batches.retrieve(batch.id).status == "completed"
    (logged,) = _log(hook_stack, f"/v1/batches/{batch.id}/webhook_deliveries")
    assert logged["id"] == event.id == got.headers["webhook-id"]
    assert [a["status_code"] for a in logged["attempts"]] == [200]


def test_a_worker_killed_mid_delivery_loses_nothing(hook_stack, receiver, hook_cfg):
    receiver.script = [HANG]  # the first POST gets no answer: its worker dies holding it
    first = hook_stack.start_worker("tiny-embed")
    second = hook_stack.start_worker("tiny-embed")
    job = hook_stack.submit(
        ["a", "b"], "tiny-embed", webhook={"url": receiver.url, "secret": SECRET}
    )
    receiver.wait_for(1, timeout=240)
    with read_session(hook_cfg.database_url) as s:
        (attempt,) = s.scalars(select(WebhookAttempt))
    holder = {p.pid: p for p in (first, second)}[int(attempt.worker.split(":")[1])]
    hook_stack.kill(holder)  # SIGKILL mid-POST: nothing is recorded
    got = receiver.wait_for(2, timeout=60)  # the other worker, once the lease lapsed
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    assert got[1].answered == 200 and all(r.verified for r in got)
    time.sleep(1.5)
    assert len(receiver.received) == 2
    (event,) = _log(hook_stack, f"/v1/jobs/{job['id']}/webhook_deliveries")
    assert event["status"] == "delivered"
    lost, delivered = event["attempts"]
    assert lost["status_code"] is None and lost["error"].startswith("worker_lost")
    assert delivered["status_code"] == 200
    # the retry waited for the lease, not for an answer
    assert delivered["attempted_at"] - lost["attempted_at"] >= hook_cfg.webhook_lease_seconds
