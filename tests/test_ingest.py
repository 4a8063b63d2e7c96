"""Jobs from files, in-process on both databases: the API creates a validating job, the
dispatcher leases its ingest, the ingest checks every line and writes bucketed chunks;
invalid lines fail the job with their numbers, or are skipped as failed items; the lease
protects against a second or stale ingest."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import func, select

from core import states
from core.codec import unpack_indices, unpack_inputs
from core.db import read_session, write_session
from core.store.job_tasks import claim_job_tasks
from core.tables import Chunk, Job
from tests.conftest import make_key, worker_ctx
from worker.ingest import run_ingest


def _file_job(api, headers, data: bytes, **job) -> dict:
    up = api.post(
        "/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "jobs"}, headers=headers
    )
    assert up.status_code == 200, up.text
    r = api.post(
        "/v1/jobs",
        json={"model": "tiny-embed", "input_file_id": up.json()["id"], **job},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _claim(cfg) -> list[tuple[str, str]]:
    with write_session(cfg.database_url) as s:
        return claim_job_tasks(
            session=s,
            model="tiny-embed",
            now=time.time(),
            lease=60,
            max_attempts=3,
            status=states.VALIDATING,
        )


def _job(cfg, job_id) -> Job:
    with read_session(cfg.database_url) as s:
        return s.get(Job, job_id)


def _lines(n, bad: dict[int, bytes] | None = None) -> bytes:
    out = []
    for i in range(n):
        if bad and i in bad:
            out.append(bad[i])
        else:
            # lengths vary, so bucketing has something to sort
            out.append(orjson.dumps({"custom_id": f"c{i}", "input": "word " * (1 + i % 37)}))
    return b"\n".join(out) + b"\n"


def test_a_valid_file_becomes_bucketed_chunks(cfg, api, alice, tiny_runner):
    # a tiny compute target keeps the model's own chunk_size (200)
    cfg = cfg.model_copy(update={"bucket_window_items": 1000, "chunk_target_seconds": 1e-9})
    job = _file_job(api, alice, _lines(2500))
    assert job["status"] == "validating" and job["counts"]["total"] == 2500
    assert job["input_file_id"].startswith("file_")
    ((job_id, token),) = _claim(cfg)
    assert _claim(cfg) == []  # held: nobody else takes it
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "queued"
    row = _job(cfg, job_id)
    assert (row.status, row.total, row.failed, row.errors) in {
        (states.QUEUED, 2500, 0, None),
        (states.IN_PROGRESS, 2500, 0, None),
    }
    with read_session(cfg.database_url) as s:
        chunks = s.execute(
            select(Chunk.bucket, Chunk.inputs, Chunk.item_indices).where(Chunk.job_id == job_id)
        ).all()
    assert row.chunk_count == len(chunks)
    assert sorted({b for b, _, _ in chunks}) == sorted({b for b, _, _ in chunks})
    seen = []
    for _, inputs, indices in chunks:
        records = unpack_inputs(inputs)
        idx = list(unpack_indices(indices))
        assert [r[0] for r in records] == idx == sorted(idx)
        assert all(r[1] == f"c{r[0]}" for r in records)
        lengths = [len(r[2]) for r in records]
        assert max(lengths) - min(lengths) <= 5 * 37  # sorted within a window of 1000
        seen += idx
    assert sorted(seen) == list(range(2500))
    # the window's items were sorted: a chunk's inputs are mostly of one length
    spread = [
        max(len(r[2]) for r in unpack_inputs(i)) - min(len(r[2]) for r in unpack_inputs(i))
        for _, i, _ in chunks
    ]
    assert sum(spread) / len(spread) < 5 * 37 / 2


def test_invalid_lines_fail_the_job_with_their_numbers(cfg, api, alice, tiny_runner):
    bad = {
        3: b'{"custom_id": "x3", "input": 42}',
        7: b'{"custom_id": "x7"}',
        9: b'{"custom_id": "x9", "input": "ok", "extra": 1}',
        11: b'{"custom_id": "c0", "input": "dup of line 1"}',
    }
    job = _file_job(api, alice, _lines(20, bad))
    ((job_id, token),) = _claim(cfg)
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "failed"
    row = _job(cfg, job_id)
    assert row.status == states.FAILED
    data = row.errors["data"]
    assert [(e["line"], e["code"]) for e in data] == [
        (4, "invalid_input"),
        (8, "missing_input"),
        (10, "unknown_field"),
        (12, "duplicate_custom_id"),
    ]
    assert row.errors["invalid_lines"] == 3 and row.errors["duplicates"] == 1
    with read_session(cfg.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0
    shown = api.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert shown["status"] == "failed" and shown["errors"]["data"][0]["line"] == 4


def test_skip_turns_invalid_lines_into_failed_items(cfg, api, alice, tiny_runner):
    bad = {
        0: b'{"custom_id": "b0", "input": ["no"]}',
        5: b'{"custom_id": 5, "input": "x"}',
        19: b'{"input": ""}',
    }
    job = _file_job(api, alice, _lines(20, bad), on_invalid="skip")
    ((job_id, token),) = _claim(cfg)
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "queued"
    row = _job(cfg, job_id)
    assert (row.total, row.failed, row.errors["invalid_lines"]) == (20, 2, 2)
    results = api.get(f"/v1/jobs/{job['id']}/results", headers=alice).content.splitlines()
    lines = [orjson.loads(x) for x in results]
    assert [(x["index"], x["custom_id"], x["error"]["code"]) for x in lines] == [
        (0, "b0", "invalid_input"),
        (5, None, "invalid_custom_id"),
    ]
    assert lines[1]["error"]["message"].startswith("line 6:")


def test_everything_invalid_with_skip_completes_at_once(cfg, api, alice, tiny_runner):
    job = _file_job(api, alice, b'{"input": 1}\n{"input": 2}\n', on_invalid="skip")
    ((job_id, token),) = _claim(cfg)
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "queued"
    row = _job(cfg, job_id)
    assert (row.status, row.failed, row.total) == (states.COMPLETED, 2, 2)
    assert job["id"] == job_id


def test_a_stale_ingest_writes_nothing_and_a_lapsed_one_is_retried(cfg, api, alice, tiny_runner):
    job = _file_job(api, alice, _lines(50))
    ((job_id, old),) = _claim(cfg)
    with write_session(cfg.database_url) as s:  # the first ingest's worker died
        s.get(Job, job_id).task_expires_at = time.time() - 1
    ((_, new),) = _claim(cfg)
    assert new != old
    ctx = worker_ctx(cfg, tiny_runner)
    assert run_ingest(ctx, job_id, old) == "not_held"
    assert run_ingest(ctx, job_id, new) == "queued"
    assert _job(cfg, job_id).task_attempts == 2
    assert job["status"] == "validating"


def test_an_ingest_that_keeps_dying_fails_the_job(cfg, api, alice):
    job = _file_job(api, alice, _lines(5))
    for _ in range(3):
        assert len(_claim(cfg)) == 1
        with write_session(cfg.database_url) as s:
            s.get(Job, job["id"]).task_expires_at = time.time() - 1
    assert _claim(cfg) == []
    row = _job(cfg, job["id"])
    assert row.status == states.FAILED and row.errors["data"][0]["code"] == "ingest_failed"


def test_cancel_while_validating(cfg, api, alice, tiny_runner):
    _file_job(api, alice, _lines(30))
    ((job_id, token),) = _claim(cfg)
    r = api.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "not_held"
    with read_session(cfg.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0


def test_file_jobs_are_checked_before_they_exist(cfg, api, alice):
    bob = {"Authorization": f"Bearer {make_key(cfg.database_url, 'bob')}"}
    up = api.post("/v1/files", files={"file": ("a.jsonl", _lines(3))}, headers=alice).json()
    cases = [
        ({"model": "tiny-embed", "input_file_id": up["id"]}, bob, 404),
        ({"model": "tiny-embed", "input_file_id": "file_nope"}, alice, 404),
        ({"model": "nope", "input_file_id": up["id"]}, alice, 400),
        ({"model": "tiny-embed", "input_file_id": up["id"], "inputs": []}, alice, 422),
        ({"model": "tiny-embed"}, alice, 422),
        ({"model": "tiny-embed", "input_file_id": up["id"], "on_invalid": "x"}, alice, 422),
        ({"model": "tiny-embed", "input_file_id": up["id"], "params": {"x": 1}}, alice, 400),
    ]
    for body, who, status in cases:
        r = api.post("/v1/jobs", json=body, headers=who)
        assert r.status_code == status, (body, r.text)
    with read_session(cfg.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    # a file a validating job reads cannot be deleted under it
    job = _file_job(api, alice, _lines(3))
    file_id = job["input_file_id"]
    assert api.delete(f"/v1/files/{file_id}", headers=alice).status_code == 409


def test_chunks_grow_to_the_compute_target(cfg, api, alice, tiny_runner):
    """With no history the ingest times the model on the file's first lines, and cuts
    chunks of about chunk_target_seconds; later jobs size from the finished chunks."""
    # A target far above what tiny-embed needs for 3,000 items, however loaded the machine:
    # the timed size is then the cap, never the model's default of 200.
    cfg = cfg.model_copy(update={"chunk_target_seconds": 60.0, "max_chunk_items": 3000})
    _file_job(api, alice, _lines(12_000))
    ((job_id, token),) = _claim(cfg)
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "queued"
    with read_session(cfg.database_url) as s:
        sizes = list(s.scalars(select(Chunk.n_items).where(Chunk.job_id == job_id)))
    assert sum(sizes) == 12_000
    assert max(sizes) == 3000  # tiny-embed's chunk_size is 200
