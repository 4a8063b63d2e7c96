"""Usage counters on both databases: moved by finished chunks and by the sweep, they sum to
what the jobs report, per job, model and day; images and device kinds are kept apart; a
refused completion adds nothing; usage outlives its jobs; pages follow their cursor."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, func, select

from core.codec import pack_lines
from core.db import read_session, write_session
from core.result_lines import error_line, result_line
from core.store.chunk_leases import complete_chunk, start_chunk
from core.store.dispatch import dispatch_chunks
from core.store.jobs import JobSpec, create_job
from core.store.sweep import sweep_expired
from core.store.tenants import get_or_create_tenant
from core.store.usage import usage_day
from core.store.usage_report import UsageQuery, device_kinds, usage_rows, usage_totals
from core.submit.jobs import job_chunk_rows
from core.tables import Chunk, Job, Tenant, UsageCounter

DAY = 86400.0


def _job(db, tenant, model, task, n, chunk_size=2) -> str:
    with write_session(db) as s:
        t = get_or_create_tenant(session=s, name=tenant)
        spec = JobSpec(
            model=model,
            task=task,
            items=[(f"c{i}", f"text {i}") for i in range(n)],
            chunk_size=chunk_size,
        )
        return create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id


def _run_model(db, model, now, device, fail_first=True, keep=0) -> int:
    """Dispatch, start and complete every chunk of a model but `keep` (left running under a
    one-second lease); each chunk's first item fails when fail_first. Chunks completed."""
    with write_session(db) as s:
        sent = dispatch_chunks(session=s, model=model, limit=100, now=now, queue_lease=60)
    done = 0
    for n, d in enumerate(sent):
        with write_session(db) as s:
            work = start_chunk(
                session=s, chunk_id=d.chunk_id, token=d.token, worker="w", now=now, lease=1.0
            )
        assert work is not None
        if n < keep:
            continue
        lines = [
            error_line(i, c, "boom", "x") if fail_first and k == 0 else result_line(i, c, [1.0])
            for k, (i, c, _) in enumerate(work.records)
        ]
        failed = 1 if fail_first else 0
        completion = dict(
            session=None,
            work=work,
            outputs=pack_lines(lines),
            completed=len(lines) - failed,
            failed=failed,
            now=now,
            compute_seconds=0.25 * len(lines),
            prompt_tokens=3 * len(lines),
            completion_tokens=len(lines),
            device=device,
        )
        with write_session(db) as s:
            assert complete_chunk(**{**completion, "session": s})
        with write_session(db) as s:  # a duplicate completion is refused and adds nothing
            assert not complete_chunk(**{**completion, "session": s})
        done += 1
    return done


def _query(db, tenant: str | None, group_by="day", now=None) -> UsageQuery:
    now = now or time.time()
    tenant_id = None
    if tenant is not None:
        with read_session(db) as s:
            tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == tenant))
    return UsageQuery(
        start=usage_day(now - DAY), end=usage_day(now + DAY), group_by=group_by, tenant_id=tenant_id
    )


def _report(db, query, limit=1000, after=None):
    with read_session(db) as s:
        kinds = device_kinds(session=s, query=query)
        rows = usage_rows(session=s, query=query, kinds=kinds, limit=limit, after=after)
        return rows, usage_totals(session=s, query=query, kinds=kinds)


def _jobs_of(db, tenant) -> list[Job]:
    with read_session(db) as s:
        return list(s.scalars(select(Job).join(Tenant).where(Tenant.name == tenant)))


@pytest.fixture
def ran(db_url):
    """acme: an embed job on cuda (one chunk then failed by the sweep) and an image job
    on cpu; zeta: an embed job on cpu."""
    now = time.time()
    texts = _job(db_url, "acme", "m-text", "embed", n=8)
    images = _job(db_url, "acme", "m-img", "classify_image", n=4)
    _job(db_url, "zeta", "m-other", "embed", n=3)
    assert _run_model(db_url, "m-text", now, "cuda", keep=1) == 3
    assert _run_model(db_url, "m-img", now, "cpu") == 2
    assert _run_model(db_url, "m-other", now, "cpu", fail_first=False) == 2
    with write_session(db_url) as s:  # the kept chunk's worker died: failed at once
        moved = sweep_expired(session=s, now=now + 5, max_attempts=1, isolation_horizon=0.0)
    assert moved["failed"] == 1
    return {"text": texts, "image": images}


def test_usage_sums_equal_what_the_jobs_report(db_url, ran):
    for tenant in ("acme", "zeta"):
        jobs = _jobs_of(db_url, tenant)
        _, totals = _report(db_url, _query(db_url, tenant))
        assert totals.items == sum(j.completed for j in jobs)
        assert totals.failed_items == sum(j.failed for j in jobs)
        assert totals.input_tokens == sum(j.prompt_tokens for j in jobs)
        assert totals.output_tokens == sum(j.completion_tokens for j in jobs)
        assert totals.cache_hits == 0  # no result cache yet
        with read_session(db_url) as s:
            compute = s.scalar(
                select(func.sum(Chunk.compute_seconds)).where(
                    Chunk.job_id.in_([j.id for j in jobs])
                )
            )
        assert sum(totals.device_seconds.values()) == pytest.approx(compute)
    acme = {j.task: j for j in _jobs_of(db_url, "acme")}
    assert acme["embed"].failed == 2 + 3 and acme["embed"].completed == 3
    _, totals = _report(db_url, _query(db_url, "acme"))
    assert totals.images == acme["classify_image"].completed == 2
    # 6 text items computed on cuda (the swept chunk's never ran), 4 images on cpu.
    assert totals.device_seconds == pytest.approx({"cuda": 1.5, "cpu": 1.0})


def test_usage_by_job_model_and_day(db_url, ran):
    query = _query(db_url, "acme", "job")
    rows, _ = _report(db_url, query)
    jobs = {j.id: j for j in _jobs_of(db_url, "acme")}
    assert {r.key for r in rows} == set(jobs)
    for row in rows:
        job = jobs[row.key]
        assert (row.model, row.sums.items, row.sums.failed_items) == (
            job.model,
            job.completed,
            job.failed,
        )
        assert row.sums.input_tokens == job.prompt_tokens
    models, _ = _report(db_url, _query(db_url, "acme", "model"))
    assert [(r.key, r.model, r.sums.items) for r in models] == [
        ("m-img", None, 2),
        ("m-text", None, 3),
    ]
    days, totals = _report(db_url, _query(db_url, "acme", "day"))
    assert [r.key for r in days] == [usage_day(time.time())]
    assert days[0].sums == totals


def test_pages_follow_the_cursor_across_tenants(db_url, ran):
    query = _query(db_url, None, "job")
    every, _ = _report(db_url, query)
    assert len(every) == 3 and len({r.tenant_id for r in every}) == 2
    seen, after = [], None
    while True:
        page, _ = _report(db_url, query, limit=1, after=after)
        if not page:
            break
        seen += page
        after = (page[-1].tenant_id, page[-1].key)
    assert seen == every
    assert [(r.tenant_id, r.key) for r in every] == sorted((r.tenant_id, r.key) for r in every)


def test_usage_outlives_its_jobs_but_not_its_tenant(db_url, ran):
    query = _query(db_url, "acme")
    _, before = _report(db_url, query)
    with write_session(db_url) as s:  # retention removes jobs
        s.execute(delete(Chunk).where(Chunk.job_id.in_(ran.values())))
        s.execute(delete(Job).where(Job.id.in_(ran.values())))
    _, after = _report(db_url, query)
    assert after == before and after.items == 5 and after.failed_items == 7
    with write_session(db_url) as s:
        s.execute(delete(Tenant).where(Tenant.id == query.tenant_id))
    with read_session(db_url) as s:
        left = s.scalar(select(func.count()).where(UsageCounter.tenant_id == query.tenant_id))
    assert left == 0


def test_a_range_elsewhere_is_empty(db_url, ran):
    past = _query(db_url, "acme", now=time.time() - 30 * DAY)
    rows, totals = _report(db_url, past)
    assert rows == [] and totals.items == 0 and totals.device_seconds == {}
