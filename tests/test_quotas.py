"""Quotas per tenant, on both databases: queued items, concurrent jobs, stored bytes,
uploads and submissions per minute; defaults from settings, overrides per tenant; 429
quota_exceeded naming the quota, its limit and the use, Retry-After where waiting helps;
nothing half-created. And the stored-bytes counter, which must equal a scan of what is
stored after every kind of write and delete."""

import hashlib
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core import states
from core.codec import pack_lines
from core.db import read_session, write_session
from core.result_lines import result_line
from core.store.files import finish_file, forget_file, start_file
from core.store.ingest import add_chunks, clear_chunks
from core.store.job_tasks import claim_job_tasks
from core.store.retention import delete_expired_jobs
from core.store.stored_bytes import recount_stored_bytes, stored_bytes
from core.store.sweep import sweep_expired
from core.store.tenants import create_key, tenant_named
from core.submit.jobs import Submitter, write_file_job
from core.tables import File, Job
from tests.conftest import auth
from tests.test_api import _submit
from tests.test_batches import upload
from tests.test_store import _complete, _dispatch, _job, _start


@pytest.fixture
def admin(cfg) -> dict[str, str]:
    """An admin key of tenant ops, as a header."""
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


def _quota(api, admin, tenant: str, **quotas) -> None:
    r = api.patch(f"/v1/admin/tenants/{tenant}", json={"quotas": quotas}, headers=admin)
    assert r.status_code == 200, r.text


def _refused(r, quota: str) -> dict:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["quota"] == quota
    return error["details"]


def _count(cfg, table, **where) -> int:
    with read_session(cfg.database_url) as session:
        q = select(func.count()).select_from(table)
        for name, value in where.items():
            q = q.where(getattr(table, name) == value)
        return session.scalar(q)


def _tenant_id(cfg, name: str) -> str:
    with read_session(cfg.database_url) as session:
        return tenant_named(session=session, id_or_name=name).id


def _counter_is_exact(cfg, tenant_id: str) -> int:
    with read_session(cfg.database_url) as session:
        counted = stored_bytes(session=session, tenant_id=tenant_id)
        assert counted == recount_stored_bytes(session=session, tenant_id=tenant_id)
    return counted


def test_queued_items_and_concurrent_jobs(api, cfg, admin, alice, bob):
    _quota(api, admin, "alice", queued_items=5, concurrent_jobs=2)
    first = _submit(api, alice, n=3).json()["id"]
    details = _refused(_submit(api, alice, n=3), "queued_items")
    assert details == {"quota": "queued_items", "limit": 5, "current": 3, "requested": 3}
    assert _submit(api, alice, n=3).headers["Retry-After"] == "30"  # jobs ending make room
    too_big = _submit(api, alice, n=6)
    assert _refused(too_big, "queued_items") and "Retry-After" not in too_big.headers
    assert _count(cfg, Job) == 1  # nothing half-created
    assert _submit(api, bob, n=6).status_code == 201  # another tenant's quota is its own

    assert _submit(api, alice, n=2).status_code == 201
    _quota(api, admin, "alice", queued_items=None)  # back to the default
    details = _refused(_submit(api, alice, n=1), "concurrent_jobs")
    assert details == {"quota": "concurrent_jobs", "limit": 2, "current": 2, "requested": 1}
    mine = api.get("/v1/quotas", headers=alice).json()
    assert mine == api.get("/v1/admin/tenants/alice/quotas", headers=admin).json()
    by_kind = {q["quota"]: q for q in mine["data"]}
    assert by_kind["concurrent_jobs"] == {
        "quota": "concurrent_jobs", "limit": 2, "overridden": True, "current": 2,
    }  # fmt: skip
    assert by_kind["queued_items"] == {
        "quota": "queued_items", "limit": cfg.quota_queued_items, "overridden": False,
        "current": 5,
    }  # fmt: skip
    # refused ones count too (6 this minute, fewer if a minute began between them)
    assert 1 <= by_kind["submissions_per_minute"]["current"] <= 6
    assert api.get("/v1/quotas", headers=bob).json()["data"][1]["current"] == 1
    assert api.post(f"/v1/jobs/{first}/cancel", headers=alice).status_code == 200
    assert _submit(api, alice, n=1).status_code == 201  # the cancelled job made room


def test_defaults_come_from_settings(cfg, alice, admin):
    limited = cfg.model_copy(update={"quota_concurrent_jobs": 1, "quota_uploads_per_minute": 1})
    with TestClient(create_app(limited)) as api:
        assert _submit(api, alice).status_code == 201
        assert _refused(_submit(api, alice), "concurrent_jobs")["limit"] == 1
        _quota(api, admin, "alice", concurrent_jobs=3)  # an override beats the default
        assert _submit(api, alice).status_code == 201
        upload(api, alice, [b'{"input": "a"}'], purpose="jobs")
        r = api.post("/v1/files", files={"file": ("b.jsonl", b'{"input": "b"}\n')}, headers=alice)
        assert _refused(r, "uploads_per_minute")["limit"] == 1
        assert 1 <= int(r.headers["Retry-After"]) <= 61


def test_submissions_and_uploads_per_minute(api, cfg, admin, alice):
    _quota(api, admin, "alice", submissions_per_minute=1, uploads_per_minute=2)
    assert _submit(api, alice).status_code == 201
    r = _submit(api, alice)
    assert _refused(r, "submissions_per_minute") == {
        "quota": "submissions_per_minute",
        "limit": 1,
        "current": 1,
    }
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    for i in range(2):
        upload(api, alice, [b'{"input": "%d"}' % i], purpose="jobs")
    r = api.post("/v1/files", files={"file": ("c.jsonl", b'{"input": "c"}\n')}, headers=alice)
    assert _refused(r, "uploads_per_minute")["limit"] == 2
    assert _count(cfg, File) == 2


def test_stored_bytes_counts_files_and_refuses_past_the_quota(api, cfg, admin, alice):
    alice_id = _tenant_id(cfg, "alice")
    line = b'{"input": "' + b"x" * 80 + b'"}'
    first = upload(api, alice, [line], purpose="jobs")
    size = _counter_is_exact(cfg, alice_id)
    assert size == len(line) + 1
    _quota(api, admin, "alice", stored_bytes=size + 50)
    # the body is read and counted, found over, and all of it undone
    r = api.post("/v1/files", files={"file": ("d.jsonl", line + b"\n")}, headers=alice)
    details = _refused(r, "stored_bytes")
    assert details == {
        "quota": "stored_bytes",
        "limit": size + 50,
        "current": size,
        "requested": size,
    }
    assert "Retry-After" not in r.headers
    assert _count(cfg, File) == 1 and _counter_is_exact(cfg, alice_id) == size
    # a declared length that cannot fit is refused before the body is read
    big = b"\n".join([line] * 2000) + b"\n"
    r = api.post("/v1/files", files={"file": ("e.jsonl", big)}, headers=alice)
    assert _refused(r, "stored_bytes")["current"] == size
    # at the quota, no job is taken either (its results would need room)
    _quota(api, admin, "alice", stored_bytes=size)
    assert _refused(_submit(api, alice), "stored_bytes")["current"] == size
    r = api.post("/v1/jobs", json={"model": "tiny-embed", "input_file_id": first}, headers=alice)
    assert _refused(r, "stored_bytes") and _count(cfg, Job) == 0
    # deleting makes room again
    assert api.delete(f"/v1/files/{first}", headers=alice).status_code == 200
    assert _counter_is_exact(cfg, alice_id) == 0
    upload(api, alice, [line], purpose="jobs")
    assert _counter_is_exact(cfg, alice_id) == size


def test_the_counter_follows_every_write_and_delete_of_results(cfg):
    db = cfg.database_url
    job_id = _job(db, tenant="acme", n=6, chunk_size=1)  # one item: a lost chunk fails whole
    acme = _tenant_id(cfg, "acme")
    assert _counter_is_exact(cfg, acme) == 0
    now = time.time()
    sent = _dispatch(db, 3, now=now)
    assert _complete(db, _start(db, sent[0], now=now))  # results written
    done = _counter_is_exact(cfg, acme)
    assert done > 0
    _start(db, sent[1], lease=1.0, now=now)  # its worker lost for good: error lines
    with write_session(db) as session:
        sweep_expired(session=session, now=now + 5, max_attempts=1)
    assert _counter_is_exact(cfg, acme) > done

    # a file finished and forgotten
    with write_session(db) as session:
        row = start_file(
            session=session, tenant_id=acme, filename="f", purpose="jobs", storage="db"
        )

        class Written:
            size, lines = 123, 1
            digest = hashlib.sha256(b"")

        finish_file(
            session=session,
            file_id=row.id,
            purpose="jobs",
            written=Written,
            expires_after_seconds=60,
        )
    assert _counter_is_exact(cfg, acme) > 123
    with write_session(db) as session:
        forget_file(session=session, file_id=row.id)

    # an ingest's rows of invalid lines (results from the start), then cleared
    sub = Submitter(cfg=cfg, registry={}, redis=None)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("core.submit.jobs.announce", lambda *_: None)
        file_job = write_file_job(
            sub, tenant_id=acme, model="m", task="embed", params={}, priority=0, metadata={},
            input_file_id="file_x", lines=2, on_invalid="skip", expires_after_seconds=60,
        )  # fmt: skip
    with write_session(db) as session:
        ((_, token),) = claim_job_tasks(
            session=session, model="m", now=now, lease=60, max_attempts=3, status=states.VALIDATING
        )
        failed_row = {
            "model": "m", "seq": 0, "bucket": 0, "status": states.C_DONE, "n_items": 1,
            "inputs": b"", "item_indices": b"", "completed": 0, "failed": 1, "attempts": 0,
            "outputs": pack_lines([result_line(0, "a", [1.0])]),
        }  # fmt: skip
        assert add_chunks(
            session=session, job_id=file_job.id, token=token, rows=[failed_row], now=now, lease=60
        )
    before_clear = _counter_is_exact(cfg, acme)
    with write_session(db) as session:
        clear_chunks(session=session, job_id=file_job.id)
    assert _counter_is_exact(cfg, acme) < before_clear

    # retention deletes the jobs, and their results leave the counter
    with write_session(db) as session:
        session.get(Job, job_id).expires_at = 0
        session.get(Job, file_job.id).expires_at = 0
        assert delete_expired_jobs(session=session, now=now) == 2
    assert _counter_is_exact(cfg, acme) == 0


def test_message_batches_take_quotas_their_cancels_audited_their_bytes_released(
    api, cfg, admin, alice
):
    url = "/v1/messages/batches"

    def request(cid: str) -> dict:
        params = {"model": "tiny-causal", "max_tokens": 4}
        return {
            "custom_id": cid,
            "params": {**params, "messages": [{"role": "user", "content": "hi"}]},
        }

    _quota(api, admin, "alice", queued_items=2)
    r = api.post(url, json={"requests": [request(c) for c in "abc"]}, headers=alice)
    assert r.status_code == 429 and r.json()["type"] == "error"
    assert r.json()["error"]["details"]["quota"] == "queued_items"
    assert _count(cfg, Job) == 0  # nothing half-created
    created = api.post(url, json={"requests": [request(c) for c in "ab"]}, headers=alice)
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]

    # cancelled while a chunk of its job runs; the chunk's results are still stored
    alice_id = _tenant_id(cfg, "alice")
    (sent,) = _dispatch(cfg.database_url, 1, model="tiny-causal")
    running = _start(cfg.database_url, sent)
    for _ in range(2):  # the second changes nothing and is not recorded
        assert api.post(f"{url}/{batch_id}/cancel", headers=alice).status_code == 200
    log = api.get("/v1/admin/audit", params={"action": "message_batch.cancel"}, headers=admin)
    assert [e["target_id"] for e in log.json()["data"]] == [batch_id]
    assert _complete(cfg.database_url, running)
    assert _counter_is_exact(cfg, alice_id) > 0

    deleted = api.delete(f"{url}/{batch_id}", headers=alice)
    assert deleted.status_code == 200, deleted.text
    assert _counter_is_exact(cfg, alice_id) == 0
