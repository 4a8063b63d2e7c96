"""End to end with files: upload, worker-side validation, results; and fair scheduling of a
small job submitted behind a 200,000-item one."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import func, select

from core.db import read_session
from core.tables import Chunk
from tests.stack import TERMINAL
from tests.tiny_models import bench_texts

pytestmark = pytest.mark.e2e


def test_file_job_with_skipped_lines_end_to_end(stack):
    texts = bench_texts(3000, seed=5)
    lines = [orjson.dumps({"custom_id": f"item-{i}", "input": t}) for i, t in enumerate(texts)]
    lines[10] = b'{"custom_id": "item-10", "input": {"text": 7}}'
    lines[2999] = b'{"custom_id": "item-2999", "input": "ok", "oops": true}'
    f = stack.upload(b"\n".join(lines) + b"\n")
    stack.start_worker("tiny-embed")
    job = stack.submit_file(f["id"], "tiny-embed", on_invalid="skip")
    assert job["status"] == "validating"
    job = stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
    assert job["status"] == "completed", job
    assert job["counts"] == {"total": 3000, "completed": 2998, "failed": 2, "cancelled": 0}
    assert job["errors"]["invalid_lines"] == 2
    assert [e["line"] for e in job["errors"]["data"]] == [11, 3000]
    got = [orjson.loads(x) for x in stack.results(job["id"])]
    assert [x["index"] for x in got] == list(range(3000))
    assert [x["custom_id"] for x in got] == [f"item-{i}" for i in range(3000)]
    assert {x["index"] for x in got if "error" in x} == {10, 2999}
    assert all(len(x["output"]) > 0 for x in got if "error" not in x)


def test_an_invalid_file_fails_validation_end_to_end(stack):
    data = b'{"custom_id": "a", "input": "x"}\n{"custom_id": "a", "input": "y"}\n'
    f = stack.upload(data)
    stack.start_worker("tiny-embed")
    job = stack.submit_file(f["id"], "tiny-embed")
    job = stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
    assert job["status"] == "failed"
    assert job["errors"]["data"] == [
        {
            "line": 2,
            "code": "duplicate_custom_id",
            "message": "custom_id is used by an earlier line",
        }
    ]
    assert stack.results(job["id"]) == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_small_job_overtakes_a_200k_job(stack):
    """Round-robin between jobs: 20 items submitted while 200,000 run finish before the big
    job has moved on by more than a few of its chunks."""
    words = [t.split() for t in bench_texts(2000, seed=3)]
    big = b"".join(
        orjson.dumps({"custom_id": f"b{i}", "input": " ".join(words[i % 2000][: 4 + i % 13])})
        + b"\n"
        for i in range(200_000)
    )
    f = stack.upload(big)
    assert f["lines"] == 200_000
    stack.start_worker("tiny-embed")
    job = stack.submit_file(f["id"], "tiny-embed")
    job = stack.wait_until(job["id"], lambda j: j["counts"]["completed"] >= 2000, timeout=120)
    assert job["status"] == "in_progress" and job["counts"]["total"] == 200_000
    before = stack.job(job["id"])["counts"]["completed"]
    small = stack.submit([f"small {i}" for i in range(20)], "tiny-embed")
    started = time.monotonic()
    small = stack.wait_until(small["id"], lambda j: j["status"] in TERMINAL, timeout=60)
    waited = time.monotonic() - started
    after = stack.job(job["id"])["counts"]["completed"]
    assert small["status"] == "completed" and small["counts"]["completed"] == 20
    with read_session(stack.cfg.database_url) as s:
        chunk = s.scalar(select(func.max(Chunk.n_items)).where(Chunk.job_id == job["id"]))
    # at most the chunks already queued (2 per worker) and the one running, plus the
    # polling's own lag, went by before the small job's chunk
    assert (after - before) / chunk <= 4, (before, after, chunk, waited)
    assert stack.http.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] in (
        "cancelling",
        "cancelled",
    )
