"""Fault injection: workers SIGKILLed and SIGTERMed, Redis flushed and restarted,
PostgreSQL restarted, chunks delivered twice, all mid-job, against a redis-server and a
PostgreSQL of these tests' own. After each, the job completes and every item has exactly
one result: at-least-once execution, exactly-once results."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, select, text

from core.celery_app import make_celery, send_chunk
from core.config import Settings
from core.db import get_engine, migrate, read_session
from core.tables import Chunk, Job
from tests.chaos_services import PostgresServer, RedisServer
from tests.conftest import make_key
from tests.stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]
ITEMS = 20_000


@pytest.fixture(scope="module")
def chaos_pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def chaos_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def chaos_cfg(chaos_pg, chaos_redis, registry_file) -> Iterator[Settings]:
    schema = f"c_{uuid.uuid4().hex[:10]}"
    admin = create_engine(chaos_pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = f"{chaos_pg.url}?options=-csearch_path%3D{schema}"
    migrate(url)
    yield Settings(
        database_url=url,
        redis_url=chaos_redis.url,
        redis_prefix="chaos:",
        models_file=registry_file,
        lease_seconds=3,
        queue_lease_seconds=4,
        sweep_interval_seconds=0.5,
        dispatch_interval_seconds=0.2,
        cancel_check_seconds=0.05,
        max_attempts=12,
        chunk_target_seconds=0.2,
    )
    get_engine(url).dispose()


@pytest.fixture
def chaos_stack(chaos_cfg, tmp_path) -> Iterator[Stack]:
    s = Stack(chaos_cfg, tmp_path / "logs", make_key(chaos_cfg.database_url, "chaos"))
    s.start_api()
    yield s
    s.close()


def texts(n: int) -> list[str]:
    rng = random.Random(n)
    words = ["river", "stone", "lamp", "quiet", "orbit", "copper", "meadow", "signal"]
    return [" ".join(rng.choice(words) for _ in range(1 + i % 23)) for i in range(n)]


def progress(stack: Stack, job_id: str) -> dict[str, Any]:
    return stack.job(job_id)


def wait_progress(stack: Stack, job_id: str, beyond: int, timeout: float = 120) -> dict:
    """Wait until more than `beyond` items finished (or the job ended)."""
    return stack.wait_until(
        job_id,
        lambda j: (
            j["counts"]["completed"] + j["counts"]["failed"] > beyond
            or j["status"] in ("completed", "failed", "cancelled")
        ),
        timeout,
    )


def running_job(stack: Stack, job_id: str, total: int) -> dict:
    """The job read from the database: it must have started and not ended. Read right after
    a fault, it proves the fault hit a running job (a job's counts only grow)."""
    with read_session(stack.cfg.database_url) as s:
        row = s.get(Job, job_id)
        assert row is not None
        state = {"status": row.status, "done": row.completed + row.failed}
    assert state["status"] == "in_progress" and 0 < state["done"] < total, state
    return state


def max_attempts(stack: Stack, job_id: str) -> int:
    """The most runs any chunk of the job took."""
    with read_session(stack.cfg.database_url) as s:
        return s.scalar(select(func.max(Chunk.attempts)).where(Chunk.job_id == job_id)) or 0


def assert_exactly_once(stack: Stack, job_id: str, n: int) -> dict:
    """The job completed, every index has one result, and every count agrees."""
    job = stack.wait_until(job_id, lambda j: j["status"] in ("completed", "failed", "cancelled"))
    assert job["status"] == "completed", job
    lines = [orjson.loads(x) for x in stack.results(job_id)]
    indices = [x["index"] for x in lines]
    assert indices == list(range(n)), "an item is missing or duplicated"
    failed = [x for x in lines if "error" in x]
    assert not failed, failed[:3]
    assert job["counts"] == {"total": n, "completed": n, "failed": 0, "cancelled": 0}
    with read_session(stack.cfg.database_url) as s:
        chunk_sum = s.scalar(select(func.sum(Chunk.completed)).where(Chunk.job_id == job_id))
        leased = s.scalar(
            select(func.count()).where(Chunk.job_id == job_id, Chunk.lease_token.is_not(None))
        )
        row = s.get(Job, job_id)
    assert chunk_sum == n and leased == 0 and row is not None and row.completed == n
    return job


def test_worker_sigkilled_ten_times(chaos_stack):
    """Ten SIGKILLs, each while the job runs and after its worker finished a chunk; a chunk
    a kill cut short runs again."""
    stack = chaos_stack
    items = 2 * ITEMS  # enough work for ten rounds of start, a chunk or two, kill
    job = stack.submit(texts(items), "tiny-embed")
    rng = random.Random(7)
    done, kills = 0, 0
    while kills < 10:
        proc = stack.start_worker("tiny-embed")
        done = wait_progress(stack, job["id"], done)["counts"]["completed"]
        time.sleep(rng.uniform(0.0, 0.4))
        stack.kill(proc)
        running_job(stack, job["id"], items)  # killed mid-job
        kills += 1
    stack.start_worker("tiny-embed")
    assert_exactly_once(stack, job["id"], items)
    assert max_attempts(stack, job["id"]) >= 2, "no kill cut a chunk short"


def test_redis_flushed_mid_job(chaos_stack, chaos_redis):
    stack = chaos_stack
    stack.start_worker("tiny-embed")
    job = stack.submit(texts(ITEMS), "tiny-embed")
    wait_progress(stack, job["id"], 0)
    chaos_redis.flushall()  # queued messages, heartbeats, locks: all gone
    running_job(stack, job["id"], ITEMS)
    assert_exactly_once(stack, job["id"], ITEMS)


def test_redis_restarted_mid_job(chaos_stack, chaos_redis):
    stack = chaos_stack
    stack.start_worker("tiny-embed")
    job = stack.submit(texts(ITEMS), "tiny-embed")
    wait_progress(stack, job["id"], 0)
    chaos_redis.kill()
    running_job(stack, job["id"], ITEMS)
    time.sleep(2)
    chaos_redis.start()
    assert_exactly_once(stack, job["id"], ITEMS)


def test_postgres_restarted_mid_job(chaos_stack, chaos_pg):
    stack = chaos_stack
    stack.start_worker("tiny-embed")
    job = stack.submit(texts(ITEMS), "tiny-embed")
    wait_progress(stack, job["id"], 0)
    running_job(stack, job["id"], ITEMS)  # the last read before the database goes
    chaos_pg.stop("immediate")
    # A status GET may answer from a read of the job's watch under one watch interval old
    # (SLUICE_WATCH_INTERVAL_SECONDS, 0.5 s); every answer after that needs the database.
    time.sleep(0.6)
    statuses = []
    try:
        for _ in range(10):  # the API keeps answering: 503 with Retry-After, never a 500
            r = httpx.get(
                f"{stack.url}/v1/jobs/{job['id']}",
                headers={"Authorization": f"Bearer {stack.key}"},
                timeout=30,
            )
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["Retry-After"] and r.json()["error"]["code"]
            time.sleep(0.2)
    finally:
        chaos_pg.start()
    assert set(statuses) == {503}, statuses
    # Back within a few watch intervals: 503s (the last failed read) until a read lands.
    deadline = time.monotonic() + 15
    while (code := stack.http.get(f"/v1/jobs/{job['id']}").status_code) != 200:
        assert code == 503 and time.monotonic() < deadline, code
        time.sleep(0.2)
    assert_exactly_once(stack, job["id"], ITEMS)
    assert all(p.poll() is None for p in stack.workers), "a worker died with the database"


def test_every_chunk_delivered_twice(chaos_stack):
    """A second copy of each message (same lease token), to a second worker: one result."""
    stack = chaos_stack
    job = stack.submit(texts(ITEMS), "tiny-embed")
    app = make_celery(stack.cfg)
    stack.start_worker("tiny-embed")
    stack.start_worker("tiny-embed")
    sent: set[int] = set()
    deadline = time.monotonic() + 120
    while progress(stack, job["id"])["status"] != "completed" and time.monotonic() < deadline:
        with read_session(stack.cfg.database_url) as s:
            queued = s.execute(
                select(Chunk.id, Chunk.lease_token).where(
                    Chunk.job_id == job["id"], Chunk.status == "queued"
                )
            ).all()
        for chunk_id, token in queued:
            if chunk_id not in sent and token:
                send_chunk(app, model="tiny-embed", chunk_id=chunk_id, token=token)
                sent.add(chunk_id)
        time.sleep(0.02)
    assert len(sent) > 5
    assert_exactly_once(stack, job["id"], ITEMS)
    logs = "".join(p.read_text() for p in Path(stack.logs).glob("worker*.log"))
    assert "a stale or repeated message, turned away" in logs  # the copies were turned away


def test_sigterm_hands_back_within_a_bound(chaos_stack):
    stack = chaos_stack
    proc = stack.start_worker("tiny-embed")
    job = stack.submit(texts(ITEMS), "tiny-embed")
    wait_progress(stack, job["id"], 0)
    started = time.monotonic()
    proc.terminate()
    running_job(stack, job["id"], ITEMS)
    proc.wait(30)
    assert time.monotonic() - started < 30
    with read_session(stack.cfg.database_url) as s:
        running = s.scalar(
            select(func.count()).where(Chunk.job_id == job["id"], Chunk.status == "running")
        )
    assert running == 0, "a chunk was left running by a worker that exited"
    stack.start_worker("tiny-embed")
    assert_exactly_once(stack, job["id"], ITEMS)


FAULTS = {
    "PYTHONPATH": str(Path(__file__).resolve().parent / "faults"),
    "SLUICE_TEST_FAULTS": "1",
}


def test_inputs_that_raise_or_kill_fail_alone(chaos_cfg, tmp_path):
    """One input makes the model raise, another kills the worker process: each fails
    alone (inference_error; attempts_exhausted after its chunk was split down to it), and
    the other 19,998 items complete, with a supervisor restarting the worker."""
    cfg = chaos_cfg.model_copy(update={"max_attempts": 2, "chunk_target_seconds": 0.05})
    stack = Stack(cfg, tmp_path / "logs", make_key(cfg.database_url, "poison"))
    stack.start_api()
    try:
        items = texts(ITEMS)
        items[777] += " <<raise>>"
        items[12345] += " <<kill>>"
        job = stack.submit(items, "tiny-embed")
        proc = stack.start_worker("tiny-embed", env=FAULTS)
        deaths = 0
        deadline = time.monotonic() + 400
        while stack.job(job["id"])["status"] != "completed":
            assert time.monotonic() < deadline, stack.job(job["id"])
            if proc.poll() is not None:  # the supervisor's part: start it again
                deaths += 1
                proc = stack.start_worker("tiny-embed", env=FAULTS, wait=False)
            time.sleep(0.2)
        lines = [orjson.loads(x) for x in stack.results(job["id"])]
        assert [x["index"] for x in lines] == list(range(ITEMS))
        failed = {x["index"]: x["error"]["code"] for x in lines if "error" in x}
        assert failed == {777: "inference_error", 12345: "attempts_exhausted"}
        final = stack.job(job["id"])
        assert final["counts"] == {
            "total": ITEMS,
            "completed": ITEMS - 2,
            "failed": 2,
            "cancelled": 0,
        }
        assert 2 <= deaths <= 2 + 12, deaths  # attempts, then one death per halving
    finally:
        stack.close()


def _results_once(stack: Stack, job_id: str) -> list[dict]:
    lines = [orjson.loads(x) for x in stack.results(job_id)]
    indices = [x["index"] for x in lines]
    assert indices == sorted(set(indices)), "a result is duplicated or out of order"
    return lines


def test_cancel_in_every_state(chaos_stack):
    stack = chaos_stack
    # validating: a job from a file, no worker to check it yet
    up = stack.upload(b"".join(orjson.dumps({"input": t}) + b"\n" for t in texts(100)))
    validating = stack.submit_file(up["id"], "tiny-embed")
    assert validating["status"] == "validating"
    r = stack.http.post(f"/v1/jobs/{validating['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    # queued: nothing runs it yet
    queued = stack.submit(texts(1000), "tiny-embed")
    assert stack.http.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    assert stack.results(queued["id"]) == []
    # in progress, then cancelling (cancel again: the same answer), then cancelled
    running = stack.submit(texts(3 * ITEMS), "tiny-embed")  # long enough to catch running
    stack.start_worker("tiny-embed")
    wait_progress(stack, running["id"], 0)
    first = stack.http.post(f"/v1/jobs/{running['id']}/cancel").json()
    assert first["status"] in ("cancelling", "cancelled")
    again = stack.http.post(f"/v1/jobs/{running['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] in ("cancelling", "cancelled")
    done = stack.wait_until(running["id"], lambda j: j["status"] == "cancelled", 60)
    lines = _results_once(stack, running["id"])
    assert 0 < len(lines) < 3 * ITEMS and len(lines) == done["counts"]["completed"]
    with read_session(stack.cfg.database_url) as s:
        open_chunks = s.scalar(
            select(func.count()).where(
                Chunk.job_id == running["id"], Chunk.status.in_(("pending", "queued", "running"))
            )
        )
    assert open_chunks == 0
    # completed: cancelling changes nothing
    small = stack.submit(texts(50), "tiny-embed")
    stack.wait_until(small["id"], lambda j: j["status"] == "completed", 60)
    after = stack.http.post(f"/v1/jobs/{small['id']}/cancel").json()
    assert after["status"] == "completed" and after["counts"]["completed"] == 50


def test_completion_window_expires_a_running_batch(chaos_stack):
    """The worker's sweep stops a batch past its window; its finished requests are in the
    output file, the rest in the error file as batch_expired, each exactly once."""
    stack = chaos_stack
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "tiny-embed", "input": t},
        }
        for i, t in enumerate(texts(3 * ITEMS))
    ]
    up = stack.upload(b"".join(orjson.dumps(r) + b"\n" for r in rows), purpose="batch")
    r = stack.http.post(
        "/v1/batches",
        json={"input_file_id": up["id"], "endpoint": "/v1/embeddings", "completion_window": "1h"},
    )
    batch_id = r.json()["id"]
    stack.start_worker("tiny-embed")
    wait_progress(stack, batch_id, 0)
    engine = get_engine(stack.cfg.database_url)
    with engine.begin() as conn:  # the hour is up
        conn.execute(
            Job.__table__.update().where(Job.id == batch_id).values(deadline_at=time.time() - 1)
        )
    deadline = time.monotonic() + 60
    while (batch := stack.http.get(f"/v1/batches/{batch_id}").json())["status"] != "expired":
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    out = [
        orjson.loads(x)
        for x in stack.http.get(f"/v1/files/{batch['output_file_id']}/content").content.splitlines()
    ]
    errors = [
        orjson.loads(x)
        for x in stack.http.get(f"/v1/files/{batch['error_file_id']}/content").content.splitlines()
    ]
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    ids = [x["custom_id"] for x in out + errors]
    assert len(ids) == 3 * ITEMS and set(ids) == {f"r{i}" for i in range(3 * ITEMS)}
    counts = batch["request_counts"]
    assert (counts["completed"], counts["failed"]) == (len(out), len(errors))
