"""Retry is bounded and happens once, in-process on both databases: a retry never makes a
job past max_inputs_per_job (refused from the counts, and from the items when the counts
do not tell), it is written one window of the job at a time, and concurrent or repeated
retries of one job make one job."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.db import read_session, write_session
from core.store.results import retry_windows
from core.submit.jobs import Submitter
from core.submit.retry import submit_retry
from core.tables import Chunk, Job
from tests.conftest import auth, make_key, worker_ctx
from tests.test_retry_retention import _run_all

LONG = "word " * 5000  # longer than tiny-embed takes: fails with truncate off


def _failing_job(api, headers, n: int, every: int) -> dict:
    """A job of n items, every `every`-th of which fails, run to its end."""
    inputs = [
        {"custom_id": f"c{i}", "input": LONG if i % every == 0 else f"t {i}"} for i in range(n)
    ]
    body = {"model": "tiny-embed", "inputs": inputs, "params": {"truncate": False}}
    r = api.post("/v1/jobs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _jobs(cfg) -> int:
    with read_session(cfg.database_url) as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_retry_past_max_inputs_per_job_is_refused_and_writes_nothing(cfg, tiny_runner):
    small = cfg.model_copy(update={"max_inputs_per_job": 4})
    with TestClient(create_app(small)) as api:
        alice = auth(make_key(cfg.database_url, "alice"))
        job = _failing_job(api, alice, n=4, every=1)  # all 4 fail: a retry of 4 is fine
        _run_all(small, worker_ctx(small, tiny_runner))
        assert api.post(f"/v1/jobs/{job['id']}/retry", headers=alice).status_code == 201
        big = _failing_job(api, alice, n=4, every=1)
        _run_all(small, worker_ctx(small, tiny_runner))
        with write_session(cfg.database_url) as s:
            s.get(Job, big["id"]).failed = 5  # its counts say more than 4: nothing is read
        before = _jobs(cfg)
        r = api.post(f"/v1/jobs/{big['id']}/retry", headers=alice)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_inputs"
        assert _jobs(cfg) == before


def test_a_retry_whose_items_pass_the_bound_is_stopped_midway(cfg, tiny_runner):
    """The counts can undercount (skipped lines are subtracted): the items themselves stop
    the retry at the bound, window by window, and the transaction writes nothing."""
    small = cfg.model_copy(update={"max_inputs_per_job": 6, "bucket_window_items": 4})
    with TestClient(create_app(small)) as api:
        alice = auth(make_key(cfg.database_url, "alice"))
        job = _failing_job(api, alice, n=6, every=1)
        more = _failing_job(api, alice, n=6, every=1)
        _run_all(small, worker_ctx(small, tiny_runner))
        # Move `more`'s failed chunks onto `job` (as two more windows): 12 failures, counts 6.
        with write_session(cfg.database_url) as s:
            for chunk in s.scalars(select(Chunk).where(Chunk.job_id == more["id"])):
                chunk.job_id, chunk.bucket = job["id"], chunk.bucket + 100
        before = _jobs(cfg)
        r = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_inputs"
        assert _jobs(cfg) == before
        with read_session(cfg.database_url) as s:
            assert (
                s.scalar(select(func.count()).select_from(Job).where(Job.retry_of.is_not(None)))
                == 0
            )


def test_a_retry_is_read_and_written_one_window_at_a_time(cfg, tiny_runner):
    # Windows of 4 items: chunks of at most 2 once the model's speed is measured (a first
    # job measures it), so the window is not widened to the model's chunk_size.
    windowed = cfg.model_copy(update={"bucket_window_items": 4, "max_chunk_items": 2})
    with TestClient(create_app(windowed)) as api:
        alice = auth(make_key(cfg.database_url, "alice"))
        _failing_job(api, alice, n=4, every=100)
        _run_all(windowed, worker_ctx(windowed, tiny_runner))
        job = _failing_job(api, alice, n=20, every=2)  # 10 failures over 5 windows of 4
        _run_all(windowed, worker_ctx(windowed, tiny_runner))
        windows = list(
            retry_windows(session_factory=partial(read_session, cfg.database_url), job_id=job["id"])
        )
        assert [len(w) for w in windows] == [2, 2, 2, 2, 2]  # no window holds the job
        assert [r[0] for w in windows for r in w] == list(range(0, 20, 2))
        r = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
        assert r.status_code == 201, r.text
        retry = r.json()
        assert retry["counts"]["total"] == 10
        with read_session(cfg.database_url) as s:
            buckets = s.scalars(
                select(Chunk.bucket).where(Chunk.job_id == retry["id"]).distinct()
            ).all()
            assert sorted(buckets) == [0, 1, 2, 3, 4]  # one per window of the old job
        _run_all(windowed, worker_ctx(windowed, tiny_runner))
        lines = api.get(f"/v1/jobs/{retry['id']}/results", headers=alice).content.splitlines()
        got = [orjson.loads(x) for x in lines]
        assert [(x["index"], x["custom_id"]) for x in got] == [(k, f"c{2 * k}") for k in range(10)]


def test_concurrent_and_repeated_retries_make_one_job(cfg, api, alice, tiny_runner):
    job = _failing_job(api, alice, n=9, every=3)
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    state = api.app.state
    sub = Submitter(cfg=state.settings, registry=state.registry, redis=state.redis)
    with read_session(cfg.database_url) as s:
        source = s.get(Job, job["id"])
        tenant_id = source.tenant_id

    def retry(_: int) -> tuple[str, bool]:
        done = submit_retry(sub, tenant_id=tenant_id, job=source)
        return done.job.id, done.replayed

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(retry, range(5)))
    ids = {job_id for job_id, _ in results}
    assert len(ids) == 1, results
    assert sorted(replayed for _, replayed in results) == [False, True, True, True, True]
    with read_session(cfg.database_url) as s:
        made = s.scalars(select(Job.id).where(Job.retry_of == job["id"])).all()
    assert made == list(ids)
    again = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    assert again.status_code == 201 and again.json()["id"] in ids
    assert again.headers["Idempotent-Replayed"] == "true"
    bob = auth(make_key(cfg.database_url, "bob"))
    assert api.post(f"/v1/jobs/{job['id']}/retry", headers=bob).status_code == 404
