"""The run_chunk task body in-process, on both databases and real Redis, with injected faults."""

import time

import pytest
from sqlalchemy import select

from core import states
from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.store.jobs import JobSpec, cancel_job, create_job
from core.store.sweep import sweep_expired
from core.store.tenants import get_or_create_tenant
from core.submit.jobs import job_chunk_rows
from core.tables import Chunk, Job
from tests.conftest import worker_ctx
from worker.run_chunk import execute_chunk


class CrashingRunner:
    """A fault: the runner itself breaks (not one input), as a driver error would."""

    task = "embed"

    def run(self, inputs, params, should_stop, token_counts=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def _job(cfg, n=8):
    with write_session(cfg.database_url) as s:
        t = get_or_create_tenant(session=s, name="w")
        spec = JobSpec(
            model="tiny-embed",
            task="embed",
            chunk_size=4,
            items=[(f"c{i}", f"some text number {i}") for i in range(n)],
        )
        return create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id


def _dispatch(cfg, n):
    with write_session(cfg.database_url) as s:
        return dispatch_chunks(
            session=s, model="tiny-embed", limit=n, now=time.time(), queue_lease=60
        )


def test_runs_a_chunk_and_drops_a_duplicate_message(cfg, tiny_runner):
    job_id = _job(cfg)
    d1, d2 = _dispatch(cfg, 2)
    ctx = worker_ctx(cfg, tiny_runner)
    assert execute_chunk(ctx, d1.chunk_id, d1.token) == "done"
    assert execute_chunk(ctx, d1.chunk_id, d1.token) == "stale"
    assert execute_chunk(ctx, d2.chunk_id, d2.token) == "done"
    with read_session(cfg.database_url) as s:
        job = s.get(Job, job_id)
    assert (job.status, job.completed, job.failed) == (states.COMPLETED, 8, 0)


def test_cancel_stops_a_running_chunk(cfg, tiny_runner):
    job_id = _job(cfg)
    (d,) = _dispatch(cfg, 1)
    ctx = worker_ctx(cfg, tiny_runner)
    with write_session(cfg.database_url) as s:
        tenant_id = s.get(Job, job_id).tenant_id
    calls = []

    class CancelDuringRun:
        task = "embed"

        def run(self, inputs, params, should_stop, token_counts=None):
            with write_session(cfg.database_url) as s:
                cancel_job(session=s, tenant_id=tenant_id, job_id=job_id)
            time.sleep(cfg.cancel_check_seconds * 2)
            calls.append(should_stop())
            return tiny_runner.run(inputs, params, should_stop, token_counts)

    ctx.runners["tiny-embed"] = CancelDuringRun()
    assert execute_chunk(ctx, d.chunk_id, d.token) == "cancelled"
    assert calls == [True]
    with read_session(cfg.database_url) as s:
        assert s.get(Job, job_id).status == states.CANCELLED


def test_a_crashing_runner_is_retried_then_failed_without_blocking(cfg):
    job_id = _job(cfg, n=4)
    ctx = worker_ctx(cfg, CrashingRunner())
    for attempt in range(1, cfg.max_attempts + 1):
        (d,) = _dispatch(cfg, 1)
        with pytest.raises(RuntimeError, match="illegal memory"):
            execute_chunk(ctx, d.chunk_id, d.token)
        with write_session(cfg.database_url) as s:  # the lease was ended at once
            moved = sweep_expired(session=s, now=time.time() + 0.01, max_attempts=cfg.max_attempts)
        expected = states.C_FAILED if attempt == cfg.max_attempts else states.C_PENDING
        assert moved[expected] == 1
    with read_session(cfg.database_url) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.completed, job.failed) == (states.COMPLETED, 0, 4)
        assert s.scalar(select(Chunk.attempts).where(Chunk.job_id == job_id)) == cfg.max_attempts


def test_stopping_worker_releases_its_chunk_without_using_an_attempt(cfg, tiny_runner):
    job_id = _job(cfg, n=4)
    ctx = worker_ctx(cfg, tiny_runner)
    # A message that arrives while the worker stops is acked unstarted; its chunk stays
    # queued until the queue lease lapses, then the sweep makes it pending again.
    (d,) = _dispatch(cfg, 1)
    ctx.stopping.set()  # what SIGTERM does, through worker_shutting_down
    assert execute_chunk(ctx, d.chunk_id, d.token) == "stopping"
    ctx.stopping.clear()
    with write_session(cfg.database_url) as s:
        assert sweep_expired(session=s, now=time.time() + 61, max_attempts=3)[states.C_PENDING] == 1

    # A chunk already running when the worker is told to stop goes back to pending at its
    # next micro-batch, with its attempt refunded.
    class StopMidway:
        task = "embed"

        def run(self, inputs, params, should_stop, token_counts=None):
            ctx.stopping.set()
            return tiny_runner.run(inputs, params, should_stop, token_counts)

    ctx.runners["tiny-embed"] = StopMidway()
    (d,) = _dispatch(cfg, 1)
    assert execute_chunk(ctx, d.chunk_id, d.token) == "released"
    with read_session(cfg.database_url) as s:
        chunk = s.get(Chunk, d.chunk_id)
        assert (chunk.status, chunk.attempts, chunk.lease_token) == (states.C_PENDING, 0, None)
        assert s.get(Job, job_id).status == states.IN_PROGRESS


def test_results_recorded_in_the_background_keep_the_lease_until_they_land(cfg, tiny_runner):
    from worker.recorder import Recorder

    job_id = _job(cfg, n=12)
    ctx = worker_ctx(cfg, tiny_runner)
    ctx.recorder = Recorder()
    sent = _dispatch(cfg, 3)
    for d in sent:
        assert execute_chunk(ctx, d.chunk_id, d.token) == "done"
        # the chunk stays this worker's (its lease extended) until its results land
    assert ctx.recorder.drain(30)
    assert ctx.active == {}
    with read_session(cfg.database_url) as s:
        job = s.get(Job, job_id)
        statuses = set(s.scalars(select(Chunk.status).where(Chunk.job_id == job_id)))
    assert (job.status, job.completed, statuses) == (states.COMPLETED, 12, {states.C_DONE})


def test_a_background_record_that_fails_lets_the_lease_lapse(cfg, tiny_runner, monkeypatch):
    from worker import run_chunk
    from worker.recorder import Recorder

    job_id = _job(cfg, n=4)
    ctx = worker_ctx(cfg, tiny_runner)
    ctx.recorder = Recorder()
    (d,) = _dispatch(cfg, 1)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_chunk, "render_lines", broken)
    assert execute_chunk(ctx, d.chunk_id, d.token) == "done"
    assert ctx.recorder.drain(30) and ctx.active == {}
    with read_session(cfg.database_url) as s:
        chunk = s.get(Chunk, d.chunk_id)
        assert chunk.status == states.C_RUNNING  # not recorded: the sweep takes it back
    with write_session(cfg.database_url) as s:
        sweep_expired(session=s, now=time.time() + 3600, max_attempts=3)
    with read_session(cfg.database_url) as s:
        assert s.get(Chunk, d.chunk_id).status == states.C_PENDING
        assert s.get(Job, job_id).completed == 0
