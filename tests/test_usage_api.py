"""GET /v1/usage in-process on both databases: jobs run by the worker's task body and a file
with skipped lines sum to what the jobs report; one tenant never sees another's usage and
only an admin names a tenant; CSV is formula-safe; bad input gets 400s with codes."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import select

from api.usage_views import usage_csv
from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.store.tenants import create_key, get_or_create_tenant
from core.store.usage import UsageDelta, add_usage, usage_day
from core.store.usage_report import UsageRow, UsageSums
from core.tables import Chunk
from tests.conftest import auth, worker_ctx
from tests.test_ingest import _claim, _file_job, _lines
from worker.ingest import run_ingest
from worker.run_chunk import execute_chunk

TODAY = usage_day(time.time())


@pytest.fixture
def admin(cfg) -> dict[str, str]:
    """An admin key of tenant ops, as a header."""
    with write_session(cfg.database_url) as session:
        return auth(create_key(session=session, tenant_name="ops", admin=True)[1])


def _usage(api, headers, status=200, **params):
    r = api.get("/v1/usage", params=params, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def _code(api, headers, status=400, **params) -> str:
    return _usage(api, headers, status, **params)["error"]["code"]


def _run_all(cfg, ctx) -> None:
    """Queue every pending chunk, then run every queued one with its message's token (an
    ingest queues its job's chunks itself)."""
    while True:
        with write_session(cfg.database_url) as s:
            dispatch_chunks(
                session=s, model="tiny-embed", limit=64, now=time.time(), queue_lease=60
            )
        with read_session(cfg.database_url) as s:
            queued = list(
                s.execute(select(Chunk.id, Chunk.lease_token).where(Chunk.status == "queued"))
            )
        if not queued:
            return
        for chunk_id, token in queued:
            assert execute_chunk(ctx, chunk_id, token) == "done"


def _seed(cfg, tenant: str, job_id: str, items: int, model="m", device="cpu") -> str:
    """Counters of a job, as finished chunks leave them; the tenant's id."""
    with write_session(cfg.database_url) as s:
        tenant_id = get_or_create_tenant(session=s, name=tenant).id
        add_usage(
            session=s,
            tenant_id=tenant_id,
            model=model,
            job_id=job_id,
            device=device,
            now=time.time(),
            delta=UsageDelta(items=items, input_tokens=2 * items, device_seconds=0.5),
        )
    return tenant_id


def test_jobs_run_by_the_worker_sum_to_their_counts(cfg, api, alice, tiny_runner):
    long = "word " * 5000  # longer than the model takes: fails with truncate off
    inputs = [{"custom_id": f"c{i}", "input": long if i % 3 == 0 else f"t {i}"} for i in range(9)]
    body = {"model": "tiny-embed", "inputs": inputs, "params": {"truncate": False}}
    job = api.post("/v1/jobs", json=body, headers=alice).json()
    skipped = _file_job(api, alice, _lines(6, {2: b'{"input": ["no"]}'}), on_invalid="skip")
    ((job_id, token),) = _claim(cfg)
    ctx = worker_ctx(cfg, tiny_runner)
    assert run_ingest(ctx, job_id, token) == "queued"
    _run_all(cfg, ctx)
    jobs = [api.get(f"/v1/jobs/{j['id']}", headers=alice).json() for j in (job, skipped)]
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    assert [j["counts"]["failed"] for j in jobs] == [3, 1]

    by_job = _usage(api, alice, group_by="job")
    rows = {r["job_id"]: r for r in by_job["data"]}
    assert set(rows) == {job["id"], skipped["id"]}
    for shown in jobs:
        row = rows[shown["id"]]
        assert (row["items"], row["failed_items"]) == (
            shown["counts"]["completed"],
            shown["counts"]["failed"],
        )
        assert row["input_tokens"] == shown["usage"]["prompt_tokens"] > 0
        assert row["output_tokens"] == shown["usage"]["completion_tokens"]
        assert row["model"] == "tiny-embed" and row["images"] == row["cache_hits"] == 0
        assert set(row["device_seconds"]) == {"cpu"} and row["device_seconds"]["cpu"] > 0
    totals = by_job["totals"]
    assert totals["items"] == 6 + 5 and totals["failed_items"] == 3 + 1
    by_day = _usage(api, alice)
    assert [r["day"] for r in by_day["data"]] == [TODAY]
    assert by_day["data"][0]["items"] == totals["items"] and by_day["totals"] == totals


def test_a_tenant_sees_only_its_own_usage(cfg, api, alice, bob, admin):
    alice_id = _seed(cfg, "alice", "job_a", 5)
    bob_id = _seed(cfg, "bob", "job_b", 7, device="cuda")
    mine = _usage(api, bob, group_by="job")
    assert mine["tenant_id"] == bob_id
    assert [(r["tenant_id"], r["job_id"]) for r in mine["data"]] == [(bob_id, "job_b")]
    assert mine["totals"]["items"] == 7 and mine["totals"]["device_seconds"] == {"cuda": 0.5}
    for tenant in ("alice", alice_id, "bob"):
        assert _code(api, bob, 403, tenant=tenant) == "insufficient_scope"
    # An admin key: every tenant's rows (each with its tenant), or one tenant's.
    every = _usage(api, admin, group_by="job")
    assert every["tenant_id"] is None and every["totals"]["items"] == 12
    assert {(r["tenant_id"], r["items"]) for r in every["data"]} == {(alice_id, 5), (bob_id, 7)}
    one = _usage(api, admin, tenant="alice", group_by="model")
    assert one["tenant_id"] == alice_id
    assert [(r["model"], r["items"]) for r in one["data"]] == [("m", 5)]
    assert _code(api, admin, 404, tenant="nobody") == "not_found"


def test_pages_and_csv(cfg, api, admin):
    ids = {_seed(cfg, f"t{n}", f"job_{n}", n + 1) for n in range(3)}
    seen, after = [], None
    while True:
        page = _usage(api, admin, group_by="job", limit=2, **({"after": after} if after else {}))
        seen += page["data"]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert {r["tenant_id"] for r in seen} == ids and len(seen) == 3
    r = api.get("/v1/usage", params={"format": "csv", "limit": 2}, headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["day"] for row in table] == [TODAY, TODAY]
    assert table[0]["device_seconds"] == table[0]["cpu_seconds"] == "0.5"
    rest = api.get(
        "/v1/usage",
        params={"format": "csv", "limit": 2, "after": r.headers["X-Sluice-Next-Cursor"]},
        headers=admin,
    )
    assert len(list(csv.DictReader(io.StringIO(rest.text)))) == 1
    assert "X-Sluice-Next-Cursor" not in rest.headers


def test_csv_cells_are_formula_safe():
    row = UsageRow(
        tenant_id="ten_1",
        key="job_1",
        model="=HYPERLINK(1)",
        sums=UsageSums(items=2, device_seconds={"cuda": 1.5}),
    )
    (parsed,) = csv.DictReader(io.StringIO(usage_csv([row], "job", ["cpu", "cuda"])))
    assert parsed["model"] == "'=HYPERLINK(1)" and parsed["job_id"] == "job_1"
    assert (parsed["cpu_seconds"], parsed["cuda_seconds"], parsed["device_seconds"]) == (
        "0.0",
        "1.5",
        "1.5",
    )


@pytest.mark.parametrize(
    "params,status,code",
    [
        ({"start": "2026-13-01"}, 400, "invalid_date"),
        ({"end": "yesterday"}, 400, "invalid_date"),
        ({"start": "20260101"}, 400, "invalid_date"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, 400, "invalid_range"),
        ({"start": "2025-01-01", "end": "2026-01-02"}, 400, "range_too_long"),
        ({"after": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"group_by": "week"}, 422, "invalid_request"),
        ({"format": "xml"}, 422, "invalid_request"),
        ({"limit": 0}, 422, "invalid_request"),
        ({"tenant_id": "x"}, 400, "unknown_parameter"),
    ],
)
def test_bad_input_gets_a_code(api, alice, params, status, code):
    assert _code(api, alice, status, **params) == code


def test_a_whole_leap_year_is_allowed(api, alice):
    year = _usage(api, alice, start="2024-01-01", end="2024-12-31")
    assert (year["start"], year["end"], year["data"]) == ("2024-01-01", "2024-12-31", [])
