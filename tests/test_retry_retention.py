"""Retrying a job's failed items, and the retention sweep, in-process on both databases."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import func, select

from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.tables import Chunk, File, FilePart, Job
from tests.conftest import make_key, worker_ctx
from worker.housekeeper import Housekeeper
from worker.run_chunk import execute_chunk


def _run_all(cfg, ctx) -> None:
    while True:
        with write_session(cfg.database_url) as s:
            sent = dispatch_chunks(
                session=s, model="tiny-embed", limit=8, now=time.time(), queue_lease=60
            )
        if not sent:
            return
        for d in sent:
            assert execute_chunk(ctx, d.chunk_id, d.token) == "done"


def test_retry_makes_a_job_of_the_failed_items(cfg, api, alice, tiny_runner):
    long = "word " * 5000  # longer than the model takes: fails with truncate off
    inputs = [{"custom_id": f"c{i}", "input": long if i % 3 == 0 else f"t {i}"} for i in range(9)]
    body = {"model": "tiny-embed", "inputs": inputs, "params": {"truncate": False}, "priority": 4}
    job = api.post("/v1/jobs", json=body, headers=alice).json()
    early = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_finished"
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    done = api.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert done["status"] == "completed" and done["counts"]["failed"] == 3

    r = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    assert r.status_code == 201, r.text
    retry = r.json()
    assert retry["retry_of"] == job["id"] and retry["counts"]["total"] == 3
    assert retry["params"] == done["params"] and retry["priority"] == 4
    with read_session(cfg.database_url) as s:
        assert s.get(Job, retry["id"]).retry_of == job["id"]
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    lines = api.get(f"/v1/jobs/{retry['id']}/results", headers=alice).content.splitlines()
    got = [orjson.loads(x) for x in lines]
    assert [(x["index"], x["custom_id"], x["error"]["code"]) for x in got] == [
        (0, "c0", "input_too_long"),
        (1, "c3", "input_too_long"),
        (2, "c6", "input_too_long"),
    ]
    other = {"Authorization": f"Bearer {make_key(cfg.database_url, 'bob')}"}
    assert api.post(f"/v1/jobs/{job['id']}/retry", headers=other).status_code == 404


def test_nothing_to_retry(cfg, api, alice, tiny_runner):
    job = api.post(
        "/v1/jobs", json={"model": "tiny-embed", "inputs": [{"input": "fine"}]}, headers=alice
    ).json()
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    r = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "nothing_to_retry"


def test_retention_deletes_expired_jobs_and_files(cfg, api, alice, tiny_runner, tmp_path):
    keep = api.post(
        "/v1/jobs", json={"model": "tiny-embed", "inputs": [{"input": "a"}]}, headers=alice
    ).json()
    old = api.post(
        "/v1/jobs",
        json={"model": "tiny-embed", "inputs": [{"input": "b"}], "expires_after": 3600},
        headers=alice,
    ).json()
    assert old["expires_at"] - old["created_at"] == 3600
    assert 29 * 86400 < keep["expires_at"] - keep["created_at"] <= 30 * 86400
    f_old = api.post("/v1/files", files={"file": ("x", b'{"input": "x"}\n')}, headers=alice)
    f_keep = api.post("/v1/files", files={"file": ("y", b'{"input": "y"}\n')}, headers=alice)
    with write_session(cfg.database_url) as s:
        s.get(Job, old["id"]).expires_at = time.time() - 1
        s.get(File, f_old.json()["id"]).expires_at = time.time() - 1
    Housekeeper(worker_ctx(cfg, tiny_runner)).retention(time.time())
    assert api.get(f"/v1/jobs/{old['id']}", headers=alice).status_code == 404
    assert api.get(f"/v1/jobs/{keep['id']}", headers=alice).status_code == 200
    assert api.get(f"/v1/files/{f_old.json()['id']}", headers=alice).status_code == 404
    assert api.get(f"/v1/files/{f_keep.json()['id']}", headers=alice).status_code == 200
    with read_session(cfg.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 1
        assert s.scalar(select(func.count()).select_from(FilePart)) == 1
