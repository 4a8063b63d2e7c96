"""A worker's metrics in-process, on both databases and real Redis: what a chunk counts,
failures by code, queue wait, lease losses, the runners' micro-batch reports, and the
metrics server on a real port."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

import httpx
import pytest
from prometheus_client import generate_latest
from sqlalchemy import update

from cli.processes import free_port
from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.store.jobs import JobSpec, create_job
from core.store.tenants import get_or_create_tenant
from core.submit.jobs import job_chunk_rows
from core.tables import Chunk, Job
from models.batching import IsolatingExecutor
from models.observer import IGNORED, RunObserver, attach_observer
from models.results import ItemResult
from tests.conftest import worker_ctx
from tests.prom import Exposition
from worker.context import ActiveLease
from worker.housekeeper import Housekeeper
from worker.metrics import WorkerMetrics
from worker.run_chunk import execute_chunk
from worker.supervisor import GpuSpecError, metrics_ports, worker_command
from worker.throughput import ItemRate

LONG = "many words " * 200  # past tiny-embed's 128 tokens


def _job(cfg, texts: Sequence[str], params: dict | None = None) -> str:
    with write_session(cfg.database_url) as s:
        t = get_or_create_tenant(session=s, name="m")
        spec = JobSpec(
            model="tiny-embed",
            task="embed",
            chunk_size=100,
            params=params or {},
            items=[(f"c{i}", x) for i, x in enumerate(texts)],
        )
        return create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id


def _dispatch(cfg, n=1):
    with write_session(cfg.database_url) as s:
        return dispatch_chunks(
            session=s, model="tiny-embed", limit=n, now=time.time(), queue_lease=60
        )


def scrape(metrics: WorkerMetrics) -> Exposition:
    return Exposition(generate_latest(metrics.registry).decode())


def test_a_recorded_chunk_counts_its_items_failures_tokens_and_waits(cfg, tiny_runner):
    texts = [f"text number {i}" for i in range(10)] + [LONG, LONG]
    job_id = _job(cfg, texts, params={"truncate": False})
    ctx = worker_ctx(cfg, tiny_runner)
    ctx.metrics.describe(ctx.host, ctx.runners)
    (d,) = _dispatch(cfg)
    assert execute_chunk(ctx, d.chunk_id, d.token, queued_at=time.time() - 3.0) == "done"
    with read_session(cfg.database_url) as s:
        job = s.get(Job, job_id)
    m = scrape(ctx.metrics)
    assert m.value("sluice_items_total", model="tiny-embed", status="completed") == job.completed
    assert m.value("sluice_items_total", model="tiny-embed", status="failed") == job.failed == 2
    assert m.value("sluice_items_failed_total", model="tiny-embed", code="input_too_long") == 2
    assert m.value("sluice_prompt_tokens_total", model="tiny-embed") == job.prompt_tokens > 0
    assert m.value("sluice_completion_tokens_total", model="tiny-embed") == 0
    assert m.value("sluice_chunk_seconds_count", model="tiny-embed", task="embed") == 1
    assert m.value("sluice_queue_wait_seconds_count", model="tiny-embed") == 1
    assert m.value("sluice_queue_wait_seconds_sum", model="tiny-embed") >= 3.0
    assert m.value("sluice_queue_wait_seconds_bucket", model="tiny-embed", le="2.0") == 0
    assert ctx.throughput.per_second()["tiny-embed"] > 0
    (info,) = m.label_sets("sluice_worker_info")
    assert info == {"host": ctx.host, "device": "cpu", "dtype": "float32", "model": "tiny-embed"}


def test_a_message_without_a_send_time_measures_no_wait(cfg, tiny_runner):
    _job(cfg, ["a", "b"])
    ctx = worker_ctx(cfg, tiny_runner)
    (d,) = _dispatch(cfg)
    assert execute_chunk(ctx, d.chunk_id, d.token) == "done"
    m = scrape(ctx.metrics)
    assert m.value("sluice_queue_wait_seconds_count") == 0
    assert m.value("sluice_items_total", status="completed") == 2


class LeaseThief:
    """A fault: while the chunk computes, a sweep hands its lease to someone else."""

    task = "embed"

    def __init__(self, cfg, inner) -> None:
        self.cfg, self.inner = cfg, inner

    def run(self, inputs, params, should_stop, token_counts=None):
        with write_session(self.cfg.database_url) as s:
            s.execute(update(Chunk).values(lease_token="someone-else"))
        return self.inner.run(inputs, params, should_stop, token_counts)


def test_a_chunk_recorded_after_its_lease_was_lost_counts_a_loss_not_items(cfg, tiny_runner):
    _job(cfg, ["a", "b", "c"])
    ctx = worker_ctx(cfg, LeaseThief(cfg, tiny_runner))
    (d,) = _dispatch(cfg)
    assert execute_chunk(ctx, d.chunk_id, d.token) == "lease-lost"
    m = scrape(ctx.metrics)
    assert m.value("sluice_lease_losses_total", model="tiny-embed") == 1
    assert m.value("sluice_items_total") == 0
    assert m.value("sluice_chunk_seconds_count") == 1  # the compute happened


def test_the_housekeeper_counts_a_lost_lease_once(cfg, tiny_runner):
    _job(cfg, ["a", "b"])
    ctx = worker_ctx(cfg, tiny_runner)
    (d,) = _dispatch(cfg)
    from core.store.chunk_leases import start_chunk

    with write_session(cfg.database_url) as s:
        work = start_chunk(
            session=s, chunk_id=d.chunk_id, token=d.token, worker="w", now=time.time(), lease=60
        )
    ctx.active[d.chunk_id] = ActiveLease(work=work)
    keeper = Housekeeper(ctx)
    keeper.extend_leases(time.time())
    assert scrape(ctx.metrics).value("sluice_lease_losses_total") == 0  # still ours
    with write_session(cfg.database_url) as s:
        s.execute(update(Chunk).values(lease_token="someone-else"))
    keeper.extend_leases(time.time())
    keeper.extend_leases(time.time())
    assert ctx.active[d.chunk_id].lost
    assert scrape(ctx.metrics).value("sluice_lease_losses_total", model="tiny-embed") == 1


class Recording(RunObserver):
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, int]] = []
        self.ooms = 0

    def micro_batch(self, *, items: int, real_units: int, padded_units: int) -> None:
        self.batches.append((items, real_units, padded_units))

    def oom_backoff(self) -> None:
        self.ooms += 1


def test_the_encoder_reports_each_micro_batch_real_and_padded_tokens(tiny_runner):
    from core.contracts.params import parse_params

    texts = [("word " * n).strip() for n in range(1, 120)]
    seen = Recording()
    attach_observer(tiny_runner, seen)
    try:
        results = tiny_runner.run(texts, parse_params("embed", {}))
    finally:
        attach_observer(tiny_runner, IGNORED)
    assert len(seen.batches) > 1  # 1024 tokens a batch cannot hold them all
    assert sum(items for items, _, _ in seen.batches) == len(texts)
    assert sum(real for _, real, _ in seen.batches) == sum(
        r.usage["prompt_tokens"] for r in results
    )
    assert all(0 < real <= padded for _, real, padded in seen.batches)
    assert tiny_runner.executor.observer is IGNORED  # detached again


def test_an_out_of_memory_back_off_is_reported():
    seen = Recording()
    executor = IsolatingExecutor(max_batch_tokens=64)
    executor.observer = seen
    out: dict[int, ItemResult] = {}

    def forward(positions):
        if len(positions) > 2:  # a fault: the device runs out of memory on big batches
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [p * 10 for p in positions]

    executor.run(list(range(8)), forward, out.__setitem__, widest=8)
    assert {p: r.output for p, r in out.items()} == {p: p * 10 for p in range(8)}
    assert seen.ooms == executor.oom_events == 3  # 8 -> 4 + 4 -> 2 + 2 + 2 + 2


def test_the_worker_observer_turns_reports_into_metrics():
    metrics = WorkerMetrics()
    observer = metrics.observer_for("m")
    metrics.chunk_started("m", None, time.time())
    observer.micro_batch(items=4, real_units=30, padded_units=40)
    observer.micro_batch(items=2, real_units=10, padded_units=10)
    observer.oom_backoff()
    metrics.chunk_computed("m", "embed", 0.5)
    m = scrape(metrics)
    assert m.value("sluice_micro_batch_size_count", model="m") == 2
    assert m.value("sluice_micro_batch_size_sum", model="m") == 6
    assert m.value("sluice_micro_batch_tokens_total", model="m", kind="real") == 40
    assert m.value("sluice_micro_batch_tokens_total", model="m", kind="padded") == 50
    assert m.value("sluice_micro_batch_padding_efficiency_bucket", model="m", le="0.8") == 1
    assert m.value("sluice_padding_efficiency", model="m") == pytest.approx(0.8)
    assert m.value("sluice_oom_backoffs_total", model="m") == 1


def test_item_rate_over_the_last_minute():
    rate = ItemRate(window=60, started=1000.0)
    rate.add("a", 100, now=1005.0)
    assert rate.per_second(now=1010.0) == {"a": 10.0}  # a young worker: over its age
    rate.add("a", 600, now=1070.0)
    rate.add("b", 60, now=1080.0)
    assert rate.per_second(now=1080.0) == {"a": 10.0, "b": 1.0}  # the first add aged out
    assert rate.per_second(now=1200.0) == {}


def test_metrics_server_answers_on_its_port_and_refuses_a_taken_one():
    metrics = WorkerMetrics()
    metrics.describe("h", {})
    metrics.items.labels("m", "embed", "completed").inc(7)
    port = free_port()
    metrics.serve("127.0.0.1", port)
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200
    assert Exposition(r.text).value("sluice_items_total", model="m") == 7
    with pytest.raises(SystemExit, match="--metrics-port"):
        WorkerMetrics().serve("127.0.0.1", port)


def test_supervised_workers_get_a_port_each():
    assert metrics_ports([2, 5, 7], 9100) == {2: 9100, 5: 9101, 7: 9102}
    assert metrics_ports([0, 1], None) == {}
    with pytest.raises(GpuSpecError):
        metrics_ports([0, 1], 65535)
    cmd = worker_command(1, None, None, 9101)
    assert cmd[-2:] == ["--metrics-port", "9101"]
    assert "--metrics-port" not in worker_command(1, None, None)


def test_worker_host_is_this_machine(cfg, tiny_runner):
    assert worker_ctx(cfg, tiny_runner).host == socket.gethostname()
