"""Resuming a cancelled job: its counts say how many items never ran, and a retry with
`include: ["cancelled"]` runs exactly those (with the failed ones when asked), bounded by
max_inputs_per_job; a file job cancelled while validating reads its file again
(in-process on both databases, chunks run as a worker runs them)."""

from __future__ import annotations

import time

import orjson
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import write_session
from core.store.dispatch import dispatch_chunks
from tests.conftest import worker_ctx
from tests.test_retry_retention import _run_all
from worker.run_chunk import execute_chunk

LONG = "word " * 5000  # longer than tiny-embed takes: fails with truncate off


def _run_one_chunk(cfg, tiny_runner) -> None:
    with write_session(cfg.database_url) as s:
        (sent,) = dispatch_chunks(
            session=s, model="tiny-embed", limit=1, now=time.time(), queue_lease=60
        )
    assert execute_chunk(worker_ctx(cfg, tiny_runner), sent.chunk_id, sent.token) == "done"


def _results(api, headers, job_id: str) -> list[dict]:
    r = api.get(f"/v1/jobs/{job_id}/results", headers=headers)
    return [orjson.loads(x) for x in r.content.splitlines()]


def _cancelled_midway(cfg, api, alice, tiny_runner) -> tuple[dict, list[dict]]:
    """A job of 500 items (every 40th fails) cancelled after the first of its chunks ran."""
    inputs = [
        {"custom_id": f"c{i}", "input": LONG if i % 40 == 0 else f"text {i}"} for i in range(500)
    ]
    body = {
        "model": "tiny-embed",
        "inputs": inputs,
        "params": {"truncate": False},
        "metadata": {"run": "1"},
    }
    job = api.post("/v1/jobs", json=body, headers=alice).json()
    _run_one_chunk(cfg, tiny_runner)
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel", headers=alice).json()
    assert cancelled["status"] == "cancelled", cancelled
    return cancelled, inputs


def test_a_cancelled_job_counts_and_resumes_its_unrun_items(cfg, api, alice, tiny_runner):
    cfg = cfg.model_copy(update={"chunk_target_seconds": 1e-9})  # chunks of 200
    job, inputs = _cancelled_midway(cfg, api, alice, tiny_runner)
    counts = job["counts"]
    ran = _results(api, alice, job["id"])
    assert counts["completed"] + counts["failed"] == len(ran) and 0 < len(ran) < 500
    assert counts["cancelled"] == 500 - len(ran) and counts["total"] == 500
    assert api.get(f"/v1/jobs/{job['id']}", headers=alice).json()["counts"] == counts

    plain = api.post(f"/v1/jobs/{job['id']}/retry", headers=alice)
    if counts["failed"] == 0:  # the chunk that ran held no failing item
        assert plain.status_code == 409 and plain.json()["error"]["code"] == "nothing_to_retry"
        assert 'include ["cancelled"]' in plain.json()["error"]["message"]
    unrun = sorted(set(range(500)) - {x["index"] for x in ran})
    r = api.post(f"/v1/jobs/{job['id']}/retry", json={"include": ["cancelled"]}, headers=alice)
    assert r.status_code == 201, r.text
    retry = r.json()
    assert retry["retry_of"] == job["id"] and retry["counts"]["total"] == len(unrun)
    assert retry["metadata"] == {"run": "1"} and retry["counts"]["cancelled"] == 0
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    again = _results(api, alice, retry["id"])
    assert [x["custom_id"] for x in again] == [inputs[i]["custom_id"] for i in unrun]
    assert all(
        ("error" in x) == (x["custom_id"] in {f"c{i}" for i in unrun if i % 40 == 0}) for x in again
    )

    both = api.post(
        f"/v1/jobs/{job['id']}/retry", json={"include": ["failed", "cancelled"]}, headers=alice
    ).json()
    failed_ids = {x["custom_id"] for x in ran if "error" in x}
    assert both["counts"]["total"] == len(unrun) + len(failed_ids)


def test_a_resume_is_bounded_and_its_request_checked(cfg, api, alice, tiny_runner):
    cfg = cfg.model_copy(update={"chunk_target_seconds": 1e-9})
    job, _ = _cancelled_midway(cfg, api, alice, tiny_runner)
    for body in ({"include": []}, {"include": ["everything"]}, {"include": "cancelled"}):
        r = api.post(f"/v1/jobs/{job['id']}/retry", json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
    unrun = job["counts"]["cancelled"]
    small = cfg.model_copy(update={"max_inputs_per_job": unrun - 1})
    with TestClient(create_app(small)) as bounded:
        r = bounded.post(
            f"/v1/jobs/{job['id']}/retry", json={"include": ["cancelled"]}, headers=alice
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_inputs"
    done = api.post(
        "/v1/jobs", json={"model": "tiny-embed", "inputs": [{"input": "x"}]}, headers=alice
    ).json()
    _run_all(cfg, worker_ctx(cfg, tiny_runner))
    r = api.post(f"/v1/jobs/{done['id']}/retry", json={"include": ["cancelled"]}, headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "nothing_to_retry"


def test_a_file_job_cancelled_while_validating_reads_its_file_again(api, alice):
    up = api.post(
        "/v1/files",
        files={"file": ("in.jsonl", b'{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n')},
        data={"purpose": "jobs"},
        headers=alice,
    ).json()
    job = api.post(
        "/v1/jobs",
        json={"model": "tiny-embed", "input_file_id": up["id"], "on_invalid": "skip"},
        headers=alice,
    ).json()
    stopped = api.post(f"/v1/jobs/{job['id']}/cancel", headers=alice).json()
    assert stopped["status"] == "cancelled" and stopped["counts"]["cancelled"] == 2
    r = api.post(f"/v1/jobs/{job['id']}/retry", json={"include": ["cancelled"]}, headers=alice)
    assert r.status_code == 201, r.text
    again = r.json()
    assert (again["status"], again["input_file_id"], again["retry_of"]) == (
        "validating",
        up["id"],
        job["id"],
    )
    assert api.delete(f"/v1/files/{up['id']}", headers=alice).status_code == 409  # in use
