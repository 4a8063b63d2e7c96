"""The Idempotency-Key header on job and batch creation, in-process on both databases: the
same key and body answer with the first job (marked Idempotent-Replayed), a different body
is 409 idempotency_key_reused, keys are per tenant, expire after 24 hours, and concurrent
requests with one key make one job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, update

from core.db import read_session, write_session
from core.submit.idempotency import IDEMPOTENCY_TTL_SECONDS
from core.tables import IdempotencyKey, Job
from tests.conftest import auth, make_key
from tests.test_batches import EMBED, request, upload

BODY = {"model": "tiny-embed", "inputs": [{"custom_id": "a", "input": "hello"}]}


def _post(api, headers, key: str | None, body: dict = BODY, path: str = "/v1/jobs"):
    extra = {"Idempotency-Key": key} if key is not None else {}
    return api.post(path, json=body, headers={**headers, **extra})


def _jobs(cfg) -> int:
    with read_session(cfg.database_url) as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def test_the_same_key_and_body_answer_with_the_first_job(api, alice, cfg):
    first = _post(api, alice, "k-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = _post(api, alice, "k-1", {**BODY, "priority": 0})  # a default made explicit
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _jobs(cfg) == 1
    assert _post(api, alice, None).json()["id"] != first.json()["id"]  # no key: a new job
    assert _jobs(cfg) == 2


def test_the_same_key_with_another_body_or_route_is_a_409(api, alice, cfg):
    assert _post(api, alice, "k-2").status_code == 201
    other = _post(api, alice, "k-2", {**BODY, "priority": 5})
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["param"] == "Idempotency-Key"
    file_id = upload(api, alice, [request("r1", EMBED, {"model": "tiny-embed", "input": "x"})])
    batch = {"input_file_id": file_id, "endpoint": EMBED, "completion_window": "24h"}
    r = _post(api, alice, "k-2", batch, "/v1/batches")
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert _jobs(cfg) == 1


def test_keys_are_per_tenant(api, alice, bob, cfg):
    mine = _post(api, alice, "shared-key").json()
    theirs = _post(api, bob, "shared-key")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine["id"]
    other_body = _post(api, bob, "other", {**BODY, "priority": 3})
    assert other_body.status_code == 201
    # alice's key does not answer bob with alice's job, even with alice's body
    assert _post(api, bob, "shared-key").json()["id"] == theirs.json()["id"]


def test_a_key_expires_after_24_hours(api, alice, cfg):
    first = _post(api, alice, "k-3").json()
    with read_session(cfg.database_url) as s:
        row = s.scalars(select(IdempotencyKey)).one()
        assert row.expires_at - row.created_at == pytest.approx(IDEMPOTENCY_TTL_SECONDS)
    with write_session(cfg.database_url) as s:  # 24 hours later
        s.execute(update(IdempotencyKey).values(expires_at=time.time() - 1))
    later = _post(api, alice, "k-3", {**BODY, "priority": 7})  # even another body
    assert later.status_code == 201, later.text
    assert later.json()["id"] != first["id"] and "Idempotent-Replayed" not in later.headers
    assert _post(api, alice, "k-3", {**BODY, "priority": 7}).json()["id"] == later.json()["id"]


def test_concurrent_requests_with_one_key_make_one_job(api, cfg):
    key = make_key(cfg.database_url, "carol")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _post(api, auth(key), "race"), range(6)))
    assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 5
    assert _jobs(cfg) == 1


def test_a_batch_is_created_once_per_key(api, alice, cfg):
    file_id = upload(api, alice, [request("r1", EMBED, {"model": "tiny-embed", "input": "x"})])
    batch = {"input_file_id": file_id, "endpoint": EMBED, "completion_window": "24h"}
    first = _post(api, alice, "b-1", batch, "/v1/batches")
    assert first.status_code == 200, first.text
    again = _post(api, alice, "b-1", batch, "/v1/batches")
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = _post(api, alice, "b-1", {**batch, "metadata": {"a": "b"}}, "/v1/batches")
    assert changed.status_code == 409
    assert _jobs(cfg) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\tkey", "é-key"])
def test_a_malformed_key_is_a_400(api, alice, cfg, key):
    r = api.post(
        "/v1/jobs",
        json=BODY,
        headers={**alice, "Idempotency-Key": key.encode("utf-8")},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_idempotency_key"
    assert _jobs(cfg) == 0


def test_a_failed_request_does_not_hold_its_key(api, alice, cfg):
    bad = _post(api, alice, "k-4", {**BODY, "model": "nope"})
    assert bad.status_code == 400
    good = _post(api, alice, "k-4")
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers
