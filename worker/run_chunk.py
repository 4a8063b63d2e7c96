"""The body of the run_chunk task: start under lease, run, record results once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from core.codec import pack_lines
from core.contracts.anthropic_requests import runs_as
from core.contracts.params import parse_params
from core.db import read_session, write_session
from core.nudge import nudge_dispatch
from core.result_lines import error_line, result_line
from core.store.chunk_leases import (
    ChunkWork,
    abandon_chunk,
    complete_chunk,
    expire_lease,
    start_chunk,
)
from core.store.jobs import is_cancel_requested
from models.results import Cancelled, ItemResult
from worker.context import ActiveLease, WorkerContext
from worker.dispatcher import dispatch_model
from worker.openai_requests_run import run_requests

log = logging.getLogger(__name__)
T = TypeVar("T")
DB_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Rendered:
    """A chunk's compressed result lines, its counts and its token usage."""

    blob: bytes
    completed: int
    failed: int
    prompt_tokens: int
    completion_tokens: int


def render_lines(work: ChunkWork, results: list[ItemResult], threads: int = 0) -> Rendered:
    """Compressed result lines for a chunk, with its counts and token usage."""
    lines: list[bytes] = []
    failed = prompt = completion = 0
    for (index, custom_id, _), res in zip(work.records, results, strict=True):
        if res.usage:
            prompt += res.usage.get("prompt_tokens", 0)
            completion += res.usage.get("completion_tokens", 0)
        if res.ok:
            lines.append(
                result_line(index, custom_id, res.output, res.usage, res.truncated, res.explanation)
            )
        else:
            failed += 1
            lines.append(
                error_line(index, custom_id, res.error_code or "error", res.error_message or "")
            )
    return Rendered(pack_lines(lines, threads), len(results) - failed, failed, prompt, completion)


def device_kind(runner: Any) -> str:
    """The kind of device a runner computes on (cpu, cuda, mps), which usage is kept by."""
    return str(getattr(getattr(runner, "device", None), "type", None) or "cpu")


def run_work(runner: Any, work: ChunkWork, should_stop: Callable[[], bool]) -> list[ItemResult]:
    """The chunk's results: native inputs straight to the runner, a batch's request bodies
    through their endpoint's translation."""
    inputs = [r[2] for r in work.records]
    if work.endpoint:
        return run_requests(runner, runs_as(work.endpoint), inputs, work.params, should_stop)
    params = parse_params(work.task, work.params)
    return runner.run(inputs, params, should_stop, token_counts=work.token_counts)


def with_db_retries(action: Callable[[], T], what: str) -> T:
    """Run a database action, retrying through a short outage (the lease outlives it)."""
    for delay in DB_RETRIES:
        try:
            return action()
        except DBAPIError as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
    return action()


def _stop_check(ctx: WorkerContext, lease: ActiveLease) -> Callable[[], bool]:
    """A check the runner calls between micro-batches; it asks the database at most every
    cancel_check_seconds, and once it has said stop it keeps saying so."""
    last = [0.0]
    cancelled = [False]

    def should_stop() -> bool:
        if cancelled[0] or lease.lost or ctx.stopping.is_set():
            return True
        now = time.monotonic()
        if now - last[0] < ctx.cfg.cancel_check_seconds:
            return False
        last[0] = now
        try:
            with read_session(ctx.cfg.database_url) as session:
                cancelled[0] = is_cancel_requested(session=session, job_id=lease.work.job_id)
        except DBAPIError:
            return False  # database briefly away: keep computing, look again later
        return cancelled[0]

    return should_stop


def _release(ctx: WorkerContext, work: ChunkWork) -> str:
    """Hand a chunk back: cancelled if its job is being cancelled, else pending again."""

    def release() -> bool:
        with write_session(ctx.cfg.database_url) as session:
            cancelled = is_cancel_requested(session=session, job_id=work.job_id)
            abandon_chunk(session=session, work=work, now=time.time(), cancelled=cancelled)
            return cancelled

    return "cancelled" if with_db_retries(release, "releasing a chunk") else "released"


def execute_chunk(
    ctx: WorkerContext, chunk_id: int, token: str, queued_at: float | None = None
) -> str:
    """Run one chunk if its message is current (published at queued_at, when known);
    return what happened (for logs and tests)."""
    if ctx.stopping.is_set():
        return "stopping"  # acked unstarted; its queue lease brings the chunk back
    t0 = time.perf_counter()
    with write_session(ctx.cfg.database_url) as session:
        work = start_chunk(
            session=session,
            chunk_id=chunk_id,
            token=token,
            worker=ctx.name,
            now=time.time(),
            lease=ctx.cfg.lease_seconds,
        )
    if work is None:
        # A copy of a message already run, or one whose lease was reissued: turned away.
        log.info("chunk %s: a stale or repeated message, turned away", chunk_id)
        return "stale"
    ctx.metrics.chunk_started(work.model, queued_at, time.time())
    runner = ctx.runners.get(work.model)
    if runner is None:  # routed here by mistake: let a worker that has the model take it
        with write_session(ctx.cfg.database_url) as session:
            abandon_chunk(session=session, work=work, now=time.time(), cancelled=False)
        return "not-served"
    if work.attempt > 1 and ctx.recorder is not None:
        # A chunk whose worker died before may hold an input that kills the process: let
        # the previous chunk's results land first, so they do not die with it.
        ctx.recorder.drain()
    lease = ActiveLease(work=work)
    with ctx.lock:
        ctx.active[chunk_id] = lease
    handed_off = False
    try:
        opened = time.perf_counter()
        work.records  # noqa: B018 - decode the inputs now, timed apart from the model
        started = time.perf_counter()
        try:
            results = run_work(runner, work, _stop_check(ctx, lease))
        except Cancelled:
            return _release(ctx, work)
        except Exception:
            # Not an input's fault (those fail alone inside the runner): end the lease now,
            # so the sweep retries the chunk soon and fails it at the attempt limit.
            log.exception("chunk %s crashed its runner; expiring its lease", chunk_id)
            with write_session(ctx.cfg.database_url) as session:
                expire_lease(session=session, work=work, now=time.time())
            raise
        compute = time.perf_counter() - started
        ctx.metrics.chunk_computed(work.model, work.task, compute)
        timings = (compute, opened - t0, started - opened)
        device = device_kind(runner)
        if ctx.recorder is not None:
            # Encode and record in the background while the next chunk computes; the lease
            # stays held (and extended) until then. A crash before it lands loses nothing:
            # the lease lapses and the chunk runs again.
            def record_then_release() -> None:
                try:
                    _record(ctx, work, results, timings, device)
                finally:
                    _finished(ctx, work)

            ctx.recorder.submit(record_then_release)
            handed_off = True
            return "done"
        return _record(ctx, work, results, timings, device)
    finally:
        if not handed_off:
            _finished(ctx, work)


def _record(
    ctx: WorkerContext,
    work: ChunkWork,
    results: list[ItemResult],
    timings: tuple[float, float, float],
    device: str = "cpu",
) -> str:
    """Encode a chunk's result lines and record them, with their compute time on a kind of
    `device`, under its lease (retrying through a short database outage)."""
    began = time.perf_counter()
    out = render_lines(work, results, ctx.pack_threads)
    rendered = time.perf_counter()
    compute, start, decode = timings

    def record() -> bool:
        with write_session(ctx.cfg.database_url) as session:
            return complete_chunk(
                session=session,
                work=work,
                outputs=out.blob,
                completed=out.completed,
                failed=out.failed,
                now=time.time(),
                compute_seconds=compute,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                device=device,
            )

    if not with_db_retries(record, "recording chunk results"):
        log.warning("chunk %s finished after its lease was lost; result dropped", work.chunk_id)
        with ctx.lock:
            lease = ctx.active.get(work.chunk_id)
        if lease is None or not lease.lost:  # the housekeeper counts the losses it finds
            ctx.metrics.lease_lost(work.model)
        return "lease-lost"
    ctx.metrics.chunk_recorded(work.model, work.task, results)
    ctx.throughput.add(work.model, len(results))
    # What the chunk cost besides the model: bench/large.py sums these lines.
    log.info(
        "chunk %s: %d items, compute %.4fs, start %.4fs, decode %.4fs, encode %.4fs, record %.4fs",
        work.chunk_id,
        len(results),
        compute,
        start,
        decode,
        rendered - began,
        time.perf_counter() - rendered,
    )
    return "done"


def _finished(ctx: WorkerContext, work: ChunkWork) -> None:
    """The chunk is no longer this worker's: stop extending it, and refill the queue."""
    with ctx.lock:
        ctx.active.pop(work.chunk_id, None)
    if not ctx.stopping.is_set():
        _refill(ctx, work.model)


def _refill(ctx: WorkerContext, model: str) -> None:
    """Ask this worker's housekeeper to top the queue up (it dispatches in its own thread,
    while the next chunk runs); without Redis, dispatch here."""
    if nudge_dispatch(ctx.redis, prefix=ctx.cfg.redis_prefix, model=model):
        return
    log.info("dispatching %s here", model)
    try:
        dispatch_model(app=ctx.app, r=ctx.redis, cfg=ctx.cfg, model=model)
    except Exception:
        log.exception("refilling the %s queue failed", model)
