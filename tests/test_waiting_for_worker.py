"""`waiting_for_worker`: a job whose model has no live worker says so in its body after a
grace period; the reading of heartbeats against the real Redis, and a live API with no
worker (then one started, which clears it)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.worker_presence import WorkerPresence
from core.constants import WORKER_TTL_SECONDS, workers_key
from core.redis_client import get_redis
from tests.conftest import make_key
from tests.stack import TERMINAL, Stack


def _job(status: str = "queued", age: float = 60.0, model: str = "m1") -> SimpleNamespace:
    return SimpleNamespace(status=status, created_at=time.time() - age, model=model)


def test_presence_reads_heartbeats_and_judges_jobs(cfg):
    r = get_redis(cfg.redis_url)
    presence = WorkerPresence(
        redis=r, prefix=cfg.redis_prefix, models=["m1", "m2"], grace_seconds=10
    )
    now = time.time()
    assert presence.waiting_for_worker(_job(), now) is False  # nothing read yet: no claim
    r.zadd(workers_key(cfg.redis_prefix, "m1"), {"w-live": now})
    r.zadd(workers_key(cfg.redis_prefix, "m2"), {"w-dead": now - WORKER_TTL_SECONDS - 1})
    presence.read()
    assert presence.live == {"m1": 1, "m2": 0}
    assert presence.has_worker("m1") is True and presence.has_worker("m2") is False
    assert presence.has_worker("unlisted") is None
    assert presence.waiting_for_worker(_job(model="m1"), now) is False
    assert presence.waiting_for_worker(_job(model="m2"), now) is True
    assert presence.waiting_for_worker(_job(model="m2", age=3), now) is False  # grace
    for status in ("completed", "failed", "cancelled", "expired"):
        assert presence.waiting_for_worker(_job(status, model="m2"), now) is False
    for status in ("validating", "in_progress", "cancelling", "finalizing"):
        assert presence.waiting_for_worker(_job(status, model="m2"), now) is True
    presence.read_at = time.monotonic() - 60  # Redis unreadable since: no claim
    assert presence.waiting_for_worker(_job(model="m2"), now) is False


@pytest.mark.e2e
def test_a_job_without_a_worker_says_so_until_one_comes(cfg, tmp_path: Path):
    stack = Stack(cfg, tmp_path / "logs", make_key(cfg.database_url, "lonely"))
    grace = 5.0
    stack.env["SLUICE_WAITING_FOR_WORKER_SECONDS"] = str(grace)
    try:
        stack.start_api()
        sent = time.monotonic()
        job = stack.submit(["one", "two", "three"], "tiny-embed")
        first = stack.http.get(f"/v1/jobs/{job['id']}").json()
        if time.monotonic() - sent < grace - 1:  # read within the grace: not yet said
            assert first["waiting_for_worker"] is False
        deadline = time.monotonic() + 60
        while not stack.job(job["id"])["waiting_for_worker"]:
            assert time.monotonic() < deadline, stack.job(job["id"])
            time.sleep(0.5)
        # every way of reading the job says it: the plain GET (the status fast path), a
        # long-poll (the route), and the list
        plain = stack.http.get(f"/v1/jobs/{job['id']}").json()
        assert plain["waiting_for_worker"] is True and plain["status"] == "queued"
        listed = stack.http.get("/v1/jobs").json()["data"]
        assert [j["waiting_for_worker"] for j in listed if j["id"] == job["id"]] == [True]
        stack.start_worker("tiny-embed")
        done = stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
        assert done["status"] == "completed" and done["waiting_for_worker"] is False
    finally:
        stack.close()
