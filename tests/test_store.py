"""Store functions on both databases: fair dispatch, leases, conditional completion, sweep."""

import time

from sqlalchemy import func, select

from core import states
from core.codec import pack_lines, unpack_lines
from core.db import read_session, write_session
from core.result_lines import result_line
from core.store.chunk_leases import abandon_chunk, complete_chunk, extend_lease, start_chunk
from core.store.dispatch import dispatch_chunks
from core.store.jobs import JobSpec, cancel_job, chunk_status_counts, create_job, get_job
from core.store.sweep import sweep_expired
from core.store.tenants import get_or_create_tenant
from core.submit.jobs import job_chunk_rows
from core.tables import Chunk, Job


def _job(db, tenant="acme", n=10, chunk_size=2, priority=0, model="m"):
    with write_session(db) as s:
        t = get_or_create_tenant(session=s, name=tenant)
        spec = JobSpec(
            model=model,
            task="embed",
            items=[(f"c{i}", f"text {i}") for i in range(n)],
            chunk_size=chunk_size,
            priority=priority,
        )
        return create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id


def _dispatch(db, limit, model="m", now=None, queue_lease=300.0):
    with write_session(db) as s:
        return dispatch_chunks(
            session=s, model=model, limit=limit, now=now or time.time(), queue_lease=queue_lease
        )


def _job_of(db, chunk_id):
    with read_session(db) as s:
        return s.scalar(select(Chunk.job_id).where(Chunk.id == chunk_id))


def _start(db, d, lease=60.0, now=None):
    with write_session(db) as s:
        return start_chunk(
            session=s,
            chunk_id=d.chunk_id,
            token=d.token,
            worker="w1",
            now=now or time.time(),
            lease=lease,
        )


def _complete(db, work):
    lines = [result_line(i, c, [1.0]) for i, c, _ in work.records]
    with write_session(db) as s:
        return complete_chunk(
            session=s,
            work=work,
            outputs=pack_lines(lines),
            completed=len(lines),
            failed=0,
            now=time.time(),
            compute_seconds=0.1,
        )


def test_create_job_is_chunked_in_order(db_url):
    job_id = _job(db_url, n=5, chunk_size=2)
    with read_session(db_url) as s:
        chunks = list(s.scalars(select(Chunk).where(Chunk.job_id == job_id).order_by(Chunk.seq)))
        assert [c.n_items for c in chunks] == [2, 2, 1]
        assert get_job(session=s, tenant_id="nobody", job_id=job_id) is None


def test_small_job_is_served_round_robin_behind_a_big_one(db_url):
    big = _job(db_url, n=100, chunk_size=2)
    small = _job(db_url, n=2, chunk_size=2)
    first = _dispatch(db_url, 1)
    second = _dispatch(db_url, 1)
    assert {_job_of(db_url, first[0].chunk_id), _job_of(db_url, second[0].chunk_id)} == {big, small}


def test_priority_first_then_tenant_fairness(db_url):
    busy = [_job(db_url, tenant="busy", n=20, chunk_size=2) for _ in range(3)]
    lone = _job(db_url, tenant="lone", n=20, chunk_size=2)
    urgent = _job(db_url, tenant="busy", n=4, chunk_size=2, priority=9)
    got = [_job_of(db_url, d.chunk_id) for d in _dispatch(db_url, 6)]
    assert got[:2] == [urgent, urgent]
    # The urgent turns were busy's: lone has two first, then the tenants alternate.
    assert got[2:4] == [lone, lone] and got[5] == lone
    assert got[4] in busy


def test_other_model_is_not_dispatched(db_url):
    _job(db_url, model="other")
    assert _dispatch(db_url, 5, model="m") == []


def test_lease_lifecycle_counts_once(db_url):
    job_id = _job(db_url, n=4, chunk_size=2)
    d1, d2 = _dispatch(db_url, 5)
    w1 = _start(db_url, d1)
    assert w1 is not None and [r[1] for r in w1.records] == ["c0", "c1"]
    assert _start(db_url, d1) is None  # a duplicate message finds the chunk already running
    with write_session(db_url) as s:
        assert extend_lease(
            session=s, chunk_id=d1.chunk_id, token=d1.token, now=time.time(), lease=60
        )
        assert not extend_lease(
            session=s, chunk_id=d1.chunk_id, token="forged", now=time.time(), lease=60
        )
    assert _complete(db_url, w1)
    assert not _complete(db_url, w1)  # the second completion is refused
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.completed) == (states.IN_PROGRESS, 2)
    assert _complete(db_url, _start(db_url, d2))
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.completed, job.failed) == (states.COMPLETED, 4, 0)
        assert job.finished_at is not None


def test_sweep_returns_expired_lease_then_fails_after_attempts(db_url):
    job_id = _job(db_url, n=2, chunk_size=2)
    now = time.time()
    for attempt in range(1, 4):
        (d,) = _dispatch(db_url, 1, now=now)
        work = _start(db_url, d, lease=1.0, now=now)
        assert work is not None
        now += 5
        with write_session(db_url) as s:
            moved = sweep_expired(session=s, now=now, max_attempts=3)
        assert moved[states.C_FAILED if attempt == 3 else states.C_PENDING] == 1
        assert not _complete(db_url, work)  # the zombie's late result is refused
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.completed, job.failed) == (states.COMPLETED, 0, 2)
        blob = s.scalar(select(Chunk.outputs).where(Chunk.job_id == job_id))
    codes = [line for line in unpack_lines(blob)]
    assert len(codes) == 2 and all(b"attempts_exhausted" in line for line in codes)


def test_lost_message_returns_to_pending_without_an_attempt(db_url):
    _job(db_url, n=2, chunk_size=2)
    now = time.time()
    (d,) = _dispatch(db_url, 1, now=now, queue_lease=1.0)
    with write_session(db_url) as s:
        assert sweep_expired(session=s, now=now + 5, max_attempts=1)[states.C_PENDING] == 1
        assert s.scalar(select(Chunk.attempts).where(Chunk.id == d.chunk_id)) == 0
    assert _start(db_url, d) is None  # the old token is dead
    (again,) = _dispatch(db_url, 1)
    assert again.chunk_id == d.chunk_id and again.token != d.token


def test_cancel_with_a_running_chunk(db_url):
    job_id = _job(db_url, n=6, chunk_size=2)
    d1, d2 = _dispatch(db_url, 2)
    work = _start(db_url, d1)
    with write_session(db_url) as s:
        tenant_id = s.get(Job, job_id).tenant_id
        job = cancel_job(session=s, tenant_id=tenant_id, job_id=job_id)
        assert job.status == states.CANCELLING
    assert _start(db_url, d2) is None  # queued chunk was cancelled
    with write_session(db_url) as s:
        assert abandon_chunk(session=s, work=work, now=time.time(), cancelled=True)
    with read_session(db_url) as s:
        assert s.get(Job, job_id).status == states.CANCELLED
        counts = chunk_status_counts(session=s, job_id=job_id)
        assert counts == {states.C_CANCELLED: 3}


def test_cancel_queued_job_is_immediate_and_idempotent(db_url):
    job_id = _job(db_url, n=4, chunk_size=2)
    with write_session(db_url) as s:
        tenant_id = s.get(Job, job_id).tenant_id
        assert cancel_job(session=s, tenant_id=tenant_id, job_id=job_id).status == states.CANCELLED
    with write_session(db_url) as s:
        assert cancel_job(session=s, tenant_id=tenant_id, job_id=job_id).status == states.CANCELLED
        assert cancel_job(session=s, tenant_id="other", job_id=job_id) is None
    assert _dispatch(db_url, 5) == []


def test_concurrent_dispatchers_never_queue_a_chunk_twice(db_url):
    from concurrent.futures import ThreadPoolExecutor

    _job(db_url, n=60, chunk_size=2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _dispatch(db_url, 10), range(4)))
    ids = [d.chunk_id for r in results for d in r]
    assert len(ids) == len(set(ids))
    with read_session(db_url) as s:
        queued = s.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.status == states.C_QUEUED)
        )
    assert queued == len(ids)


def test_bucketed_job_streams_results_in_input_order(db_url):
    import random
    from functools import partial

    from core.store.results import stream_results

    rng = random.Random(2)
    texts = [rng.choice(["a", "bb" * 40, "ccc" * 200]) for _ in range(300)]
    with write_session(db_url) as s:
        t = get_or_create_tenant(session=s, name="acme")
        spec = JobSpec(
            model="m",
            task="embed",
            items=[(f"c{i}", x) for i, x in enumerate(texts)],
            chunk_size=20,
            lengths=[len(x) for x in texts],
            bucket_window=100,
        )
        job_id = create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id
    sent = _dispatch(db_url, 100)
    rng.shuffle(sent)  # chunks finish in any order
    stream = partial(read_session, db_url)
    done: set[int] = set()
    for n, d in enumerate(sent):
        work = _start(db_url, d)
        assert len({len(r[2]) for r in work.records}) <= 2  # length-homogeneous chunk
        assert _complete(db_url, work)
        done.update(r[0] for r in work.records)
        if n == len(sent) // 2:  # partial results: exactly the finished items, in input order
            got = [
                int(line.split(b'"index":')[1].split(b",")[0])
                for line in b"".join(
                    stream_results(session_factory=stream, job_id=job_id)
                ).splitlines()
            ]
            assert got == sorted(done)
    lines = b"".join(stream_results(session_factory=stream, job_id=job_id)).splitlines()
    assert [line.split(b'"custom_id":"')[1].split(b'"')[0].decode() for line in lines] == [
        f"c{i}" for i in range(300)
    ]


def test_concurrent_starts_of_one_message_claim_it_once(db_url):
    from concurrent.futures import ThreadPoolExecutor

    _job(db_url, n=2, chunk_size=2)
    (d,) = _dispatch(db_url, 1)
    with ThreadPoolExecutor(8) as pool:
        works = list(pool.map(lambda _: _start(db_url, d), range(8)))
    assert sum(w is not None for w in works) == 1
    with read_session(db_url) as s:
        assert s.scalar(select(Chunk.attempts).where(Chunk.id == d.chunk_id)) == 1


def test_sweep_acting_on_a_stale_read_changes_nothing(db_url):
    from core.store import sweep as store_sweep

    job_id = _job(db_url, n=2, chunk_size=2)
    now = time.time()
    (d,) = _dispatch(db_url, 1, now=now)
    work = _start(db_url, d, lease=1.0, now=now)
    with read_session(db_url) as s:
        stale = s.get(Chunk, d.chunk_id)  # what a sweep read: running, lease lapsed
        s.expunge(stale)
    assert _complete(db_url, work)  # ...then the worker finished it after all
    with write_session(db_url) as s:
        assert not store_sweep._fail_chunk(s, stale, now + 5)
        assert sweep_expired(session=s, now=now + 5, max_attempts=1) == {
            states.C_PENDING: 0,
            states.C_FAILED: 0,
            states.C_CANCELLED: 0,
        }
    with read_session(db_url) as s:
        job = s.get(Job, job_id)
        assert (job.completed, job.failed, job.status) == (2, 0, states.COMPLETED)


def test_token_counts_travel_with_the_chunk(db_url):
    with write_session(db_url) as s:
        t = get_or_create_tenant(session=s, name="acme")
        for counted in (True, False):
            spec = JobSpec(
                model="m",
                task="embed",
                chunk_size=10,
                items=[(f"c{i}", "x" * i) for i in range(5)],
                lengths=[i + 2 for i in range(5)],
                lengths_are_tokens=counted,
            )
            create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec))
    first, second = (_start(db_url, d) for d in _dispatch(db_url, 2))
    assert first.token_counts == [2, 3, 4, 5, 6] and [r[0] for r in first.records] == list(range(5))
    assert second.token_counts is None
