"""The JSON routes the dashboard reads, in-process on both databases: who a key is, job
list filters, a job's detail (chunk states, throughput, usage, downloads) and its errors
by code, tenant isolation of each, and the bounds on their reads."""

from __future__ import annotations

import time
from functools import partial

import pytest
from sqlalchemy import select, update

from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.store.job_errors import group_errors
from core.store.job_insight import bucket_width, throughput_series
from core.store.tenants import create_key
from core.tables import Chunk, Job
from models.results import ItemResult
from tests.conftest import auth, worker_ctx
from tests.test_api import _submit
from worker.run_chunk import execute_chunk


def _admin(cfg) -> dict[str, str]:
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


class PickyRunner:
    """The tiny embed runner, except that inputs holding "bad" fail with code bad_input
    and inputs holding "odd" with code odd_input (as a runner reports an input's fault)."""

    task = "embed"

    def __init__(self, runner):
        self.runner = runner

    def run(self, inputs, params, should_stop, token_counts=None):
        results = self.runner.run(inputs, params, should_stop, token_counts)
        for i, text in enumerate(inputs):
            for word in ("bad", "odd"):
                if word in text:
                    results[i] = ItemResult(
                        error_code=f"{word}_input", error_message=f"{text} is {word}"
                    )
        return results


def _run_all(cfg, runner) -> int:
    """Dispatch and run every chunk of tiny-embed in this process; how many ran."""
    ctx = worker_ctx(cfg, PickyRunner(runner))
    ran = 0
    while True:
        with write_session(cfg.database_url) as s:
            work = dispatch_chunks(
                session=s, model="tiny-embed", limit=10, now=time.time(), queue_lease=60
            )
        if not work:
            return ran
        for d in work:
            assert execute_chunk(ctx, d.chunk_id, d.token) == "done"
            ran += 1


def _job_with_failures(api, cfg, headers, tiny_runner, all_bad: bool = False) -> dict:
    """A finished 450-item job (3 chunks) with 3 bad and 1 odd item (or every item bad)."""
    inputs = [{"custom_id": f"c{i}", "input": f"text {i}"} for i in range(450)]
    for i in range(450) if all_bad else (5, 250, 449):
        inputs[i]["input"] = f"bad text {i}"
    if not all_bad:
        inputs[7]["input"] = "odd text"
    r = api.post("/v1/jobs", json={"model": "tiny-embed", "inputs": inputs}, headers=headers)
    assert r.status_code == 201, r.text
    assert _run_all(cfg, tiny_runner) == 3
    job = api.get(f"/v1/jobs/{r.json()['id']}", headers=headers).json()
    assert job["status"] == "completed"
    assert job["counts"]["failed"] == (450 if all_bad else 4)
    return job


def _failing_chunks(cfg, job_id: str) -> list[tuple[int, int]]:
    """(id, failed) of the job's chunks that hold a failure, in id order."""
    with read_session(cfg.database_url) as s:
        rows = s.execute(
            select(Chunk.id, Chunk.failed)
            .where(Chunk.job_id == job_id, Chunk.failed > 0)
            .order_by(Chunk.id)
        )
        return [(i, n) for i, n in rows]


def test_me_names_the_key_and_its_scopes(api, cfg, alice):
    me = api.get("/v1/me", headers=alice).json()
    assert me["tenant_name"] == "alice" and me["is_admin"] is False
    assert "admin" not in me["scopes"]
    admin = api.get("/v1/me", headers=_admin(cfg)).json()
    assert admin["tenant_name"] == "ops" and admin["is_admin"] is True
    assert api.get("/v1/me").status_code == 401
    assert api.get("/v1/me", headers=auth("sk-sluice-nope")).status_code == 401


def test_the_job_list_filters_by_status_and_model(api, cfg, alice, bob):
    embed = _submit(api, alice).json()["id"]
    classify = api.post(
        "/v1/jobs", json={"model": "tiny-classify", "inputs": [{"input": "hi"}]}, headers=alice
    ).json()["id"]
    cancelled = _submit(api, alice).json()["id"]
    assert api.post(f"/v1/jobs/{cancelled}/cancel", headers=alice).status_code == 200
    _submit(api, bob)

    def ids(**params):
        r = api.get("/v1/jobs", params=params, headers=alice)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["data"]]

    assert ids(status="cancelled") == [cancelled]
    assert ids(status="queued") == [classify, embed]
    assert ids(model="tiny-classify") == [classify]
    assert ids(model="tiny-embed", status="queued") == [embed]
    assert ids(model="nope") == []
    # the cursor pages within the filter
    first = api.get("/v1/jobs", params={"status": "queued", "limit": 1}, headers=alice).json()
    assert [j["id"] for j in first["data"]] == [classify] and first["has_more"]
    assert ids(status="queued", after=first["next_cursor"]) == [embed]
    bad = api.get("/v1/jobs", params={"status": "running"}, headers=alice)
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status"
    admin = _admin(cfg)
    every = api.get("/v1/jobs", params={"status": "queued"}, headers=admin).json()["data"]
    assert len(every) == 3  # alice's two and bob's one


def test_a_jobs_detail_has_chunks_throughput_usage_and_downloads(api, cfg, alice, tiny_runner):
    job = _job_with_failures(api, cfg, alice, tiny_runner)
    r = api.get(f"/v1/jobs/{job['id']}/detail", headers=alice)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["job"]["id"] == job["id"] and detail["job"]["status"] == "completed"
    states = {s["status"]: s for s in detail["chunk_states"]}
    assert set(states) == {"done"} and states["done"]["chunks"] == 3
    assert states["done"]["items"] == 450 and states["done"]["compute_seconds"] > 0
    points = detail["throughput"]["points"]
    assert points and sum(p["items"] for p in points) == 450
    width = detail["throughput"]["bucket_seconds"]
    worked = sum(p["items_per_second"] * width for p in points)
    assert abs(worked - 450) < 0.01 * len(points)  # the rates add up to every item
    usage = detail["usage"]
    assert (usage["items_total"], usage["items_completed"], usage["items_failed"]) == (450, 446, 4)
    assert usage["prompt_tokens"] > 0 and usage["compute_seconds"] > 0
    assert set(detail["downloads"]) == {"jsonl", "csv", "parquet"}
    for fmt, path in detail["downloads"].items():
        got = api.get(path, headers=alice)
        assert got.status_code == 200 and got.content, fmt
    assert api.get(detail["downloads"]["jsonl"], headers=alice).text.count("\n") == 450


def test_errors_are_grouped_by_code_with_examples(api, cfg, alice, tiny_runner):
    job = _job_with_failures(api, cfg, alice, tiny_runner)
    r = api.get(f"/v1/jobs/{job['id']}/errors", headers=alice)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["failed"] == 4 and report["complete"] is True
    # only chunks holding a failure are read (items are sorted by length into chunks)
    assert report["chunks_scanned"] == len(_failing_chunks(cfg, job["id"]))
    assert [(g["code"], g["count"]) for g in report["groups"]] == [
        ("bad_input", 3),
        ("odd_input", 1),
    ]
    bad = {x["index"]: x for x in report["groups"][0]["examples"]}
    assert {i: x["custom_id"] for i, x in bad.items()} == {5: "c5", 250: "c250", 449: "c449"}
    assert bad[5]["message"] == "bad text 5 is bad"
    one = api.get(f"/v1/jobs/{job['id']}/errors", params={"examples": 1}, headers=alice).json()
    assert [len(g["examples"]) for g in one["groups"]] == [1, 1]
    assert report["validation"] is None
    too_many = api.get(f"/v1/jobs/{job['id']}/errors", params={"examples": 11}, headers=alice)
    assert too_many.status_code == 422


def test_validation_findings_are_grouped_too(api, cfg, alice):
    job_id = _submit(api, alice).json()["id"]
    findings = {
        "data": [
            {"line": 2, "code": "invalid_json", "message": "line 2 is not JSON"},
            {"line": 5, "code": "missing_input", "message": "no input"},
            {"line": 9, "code": "invalid_json", "message": "line 9 is not JSON"},
        ],
        "invalid_lines": 3,
        "duplicates": 0,
    }
    with write_session(cfg.database_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(errors=findings))
    report = api.get(f"/v1/jobs/{job_id}/errors", headers=alice).json()
    validation = report["validation"]
    assert validation["invalid_lines"] == 3 and validation["duplicates"] == 0
    assert [(g["code"], g["count"]) for g in validation["groups"]] == [
        ("invalid_json", 2),
        ("missing_input", 1),
    ]
    assert validation["groups"][0]["examples"][1] == {"line": 9, "message": "line 9 is not JSON"}
    assert report["groups"] == []


def test_another_tenants_job_is_not_found_but_an_admin_reads_it(api, cfg, alice, bob):
    job_id = _submit(api, alice).json()["id"]
    for path in (f"/v1/jobs/{job_id}/detail", f"/v1/jobs/{job_id}/errors"):
        r = api.get(path, headers=bob)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "not_found"
        assert api.get(path, headers=_admin(cfg)).status_code == 200
        assert api.get(path).status_code == 401
    assert api.get("/v1/jobs/job_nope/detail", headers=alice).status_code == 404
    fresh = api.get(f"/v1/jobs/{job_id}/detail", headers=alice).json()
    assert fresh["throughput"]["points"] == [] and fresh["chunk_states"][0]["status"] == "pending"


def test_the_error_scan_stops_at_its_chunk_bound(api, cfg, alice, tiny_runner):
    job = _job_with_failures(api, cfg, alice, tiny_runner, all_bad=True)
    chunks = _failing_chunks(cfg, job["id"])
    assert len(chunks) == 3
    factory = partial(read_session, cfg.database_url)
    report = group_errors(session_factory=factory, job_id=job["id"], max_chunks=1)
    assert report.complete is False and report.chunks_scanned == 1
    assert [(g.code, g.count) for g in report.groups] == [("bad_input", chunks[0][1])]
    whole = group_errors(session_factory=factory, job_id=job["id"], max_chunks=3)
    assert whole.complete is True and [(g.code, g.count) for g in whole.groups] == [
        ("bad_input", 450)
    ]
    assert len(whole.groups[0].examples) == 3


def test_throughput_buckets_are_bounded_and_count_every_item(api, cfg, alice):
    job_id = _submit(api, alice, n=450).json()["id"]
    t0 = 1_700_000_000.0
    with write_session(cfg.database_url) as s:
        rows = s.execute(select(Chunk.id, Chunk.n_items).where(Chunk.job_id == job_id)).all()
        assert len(rows) == 3
        ids, sizes = [r[0] for r in rows], [r[1] for r in rows]
        # three chunks finishing over ten hours: at +0:30 (started at 0), at +5h (started
        # 400 s before, so it ran across two buckets) and at +10h (no start recorded)
        starts = (t0, t0 + 5 * 3600.0 - 400, None)
        offsets = (30.0, 5 * 3600.0, 10 * 3600.0)
        for chunk_id, started, offset in zip(ids, starts, offsets, strict=True):
            s.execute(
                update(Chunk)
                .where(Chunk.id == chunk_id)
                .values(
                    status="done",
                    started_at=started,
                    finished_at=t0 + offset,
                    completed=Chunk.n_items,
                )
            )
    with read_session(cfg.database_url) as s:
        series = throughput_series(session=s, job_id=job_id, max_points=120)
    assert series.start == t0 and series.bucket_seconds == 300.0  # 10 h / 120 -> 5 min
    assert len(series.items) == 121 and sum(series.items) == 450
    assert (series.items[0], series.items[60], series.items[120]) == tuple(sizes)
    assert sum(series.items[1:60]) == sum(series.items[61:120]) == 0
    # the work: the second chunk ran from 17,600 s to 18,000 s (bucket 60's start): a
    # quarter of it in bucket 58, three in 59; the third, without a start, lands where it
    # finished
    assert len(series.worked) == 121 and sum(series.worked) == pytest.approx(450)
    assert series.worked[0] == sizes[0] and series.worked[120] == sizes[2]
    assert series.worked[58] == pytest.approx(sizes[1] / 4)
    assert series.worked[59] == pytest.approx(sizes[1] * 3 / 4) and series.worked[60] == 0


@pytest.mark.parametrize(
    ("span", "points", "width"),
    [(0, 120, 1), (100, 120, 1), (121, 120, 2), (3600, 120, 30), (86400 * 30, 120, 21600)],
)
def test_bucket_widths_are_round(span, points, width):
    assert bucket_width(span, points) == width


def test_bucket_widths_past_a_day_are_whole_days():
    assert bucket_width(86400 * 400, 120) == 4 * 86400
