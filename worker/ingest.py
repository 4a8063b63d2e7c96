"""The body of the ingest task: read a job's file under the job's ingest lease, check
every line, write length-bucketed chunks in batches, then queue the job or fail it with
its errors (line numbers and codes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from core.blobs import storage_named
from core.chunking import chunk_size_for
from core.contracts.items import ItemInvalid
from core.contracts.params import item_cost, parse_params
from core.db import read_session, write_session
from core.errors import LeaseLost
from core.jsonl import LineError, is_blank, parse_object, split_lines
from core.store.chunk_stats import item_seconds
from core.store.files import PROCESSED
from core.store.ingest import (
    accept_ingest,
    add_chunks,
    clear_chunks,
    load_ingest,
    reject_ingest,
)
from core.submit.checks import image_limits, item_limits
from core.submit.file_chunks import ChunkBuilder, IngestSettings, line_rules
from core.tables import File
from worker.context import WorkerContext
from worker.openai_requests_run import run_requests

log = logging.getLogger(__name__)
ROWS_PER_INSERT = 64
HOLD_EVERY_LINES = 20_000
CALIBRATION_ITEMS = 256


def _one_error(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"data": [{"line": line, "code": code, "message": message}], "invalid_lines": 0}


def run_ingest(ctx: WorkerContext, job_id: str, token: str) -> str:
    """Ingest one job's file; returns what became of it (for logs and tests)."""
    cfg, db = ctx.cfg, ctx.cfg.database_url
    with write_session(db) as session:
        job = load_ingest(session=session, job_id=job_id, token=token)
        if job is None:
            return "not_held"
        file = session.get(File, job.input_file_id) if job.input_file_id else None
        clear_chunks(session=session, job_id=job_id)  # an earlier attempt's, if any
        model, skip, endpoint = job.model, job.on_invalid == "skip", job.endpoint
        cost = item_cost(job.params)
        picked_up = time.time() - job.created_at
        file_id, storage_name = (file.id, file.storage) if file else (None, "db")
        usable = file is not None and file.status == PROCESSED
    runner = ctx.runners.get(model)
    if not usable or runner is None:
        code, why = (
            ("file_not_found", "the input file was deleted")
            if not usable
            else ("model_unavailable", f"this worker does not serve {model}")
        )
        with write_session(db) as session:
            reject_ingest(
                session=session,
                job_id=job_id,
                token=token,
                errors=_one_error(code, why),
                now=time.time(),
            )
        return code
    spec = runner.spec
    storage = storage_named(storage_name, database_url=db, files_dir=cfg.files_dir)
    limits = item_limits(cfg)
    check, lengths = line_rules(
        spec,
        endpoint,
        limits,
        max_dimensions=getattr(runner, "dimension", None),
        image_limits=image_limits(cfg),
    )
    # The model is timed on the file's first lines while the first window is checked:
    # the chunk size is first needed when that window is cut.
    sizing = ThreadPoolExecutor(1, thread_name_prefix="ingest-sizing")
    chunk_size = sizing.submit(
        _chunk_size, ctx, runner, storage.read(file_id or ""), check, endpoint, cost
    )
    sizing.shutdown(wait=False)
    waited = 0.0

    def chunk_size_when_timed() -> int:
        nonlocal waited
        asked = time.monotonic()
        size = chunk_size.result()
        waited += time.monotonic() - asked
        return size

    builder = ChunkBuilder(
        IngestSettings(
            model=model,
            task=spec.task,
            limits=limits,
            chunk_size=chunk_size_when_timed,
            # a chunk never spans windows, whatever size it is given
            window=max(cfg.bucket_window_items, cfg.max_chunk_items),
            skip_invalid=skip,
            max_errors=cfg.max_validation_errors,
            max_items=cfg.max_items_per_file_job,
            check=check,
            lengths=lengths,
            max_chunk_bytes=cfg.max_chunk_bytes,
            window_bytes=cfg.bucket_window_bytes,
        )
    )
    started = time.monotonic()
    try:
        pending: list[dict[str, Any]] = []
        try:
            lines = split_lines(storage.read(file_id or ""), cfg.max_line_bytes)
            for rows in builder.feed(lines, hold_every=HOLD_EVERY_LINES):
                pending += rows
                # Rows go in batches; an empty yield (a long run of invalid lines) only
                # extends the lease, with whatever is pending.
                if len(pending) >= ROWS_PER_INSERT or not rows:
                    _write(ctx, job_id, token, pending)
                    pending = []
            pending += builder.finish()
        except LineError as exc:
            with write_session(db) as session:
                reject_ingest(
                    session=session,
                    job_id=job_id,
                    token=token,
                    errors=_one_error(exc.code, exc.message, exc.line),
                    now=time.time(),
                )
            return exc.code
        accepted, errors = builder.verdict()
        if accepted:
            _write(ctx, job_id, token, pending)
            with write_session(db) as session:
                done = accept_ingest(
                    session=session,
                    job_id=job_id,
                    token=token,
                    total=builder.total,
                    failed=builder.invalid,
                    chunk_count=builder.chunks,
                    errors=errors,
                    now=time.time(),
                )
        else:
            with write_session(db) as session:
                done = reject_ingest(
                    session=session,
                    job_id=job_id,
                    token=token,
                    errors=errors or {},
                    now=time.time(),
                )
    except LeaseLost:
        log.info("ingest of %s stopped: its lease was lost or the job was cancelled", job_id)
        return "lost"
    seconds = time.monotonic() - started
    log.info(
        "ingest of %s: %d items, %d invalid, %d chunks, %s in %.1fs (%.0f lines/s; started "
        "%.2fs after the submission, waited %.2fs for the chunk size)",
        job_id,
        builder.total,
        builder.invalid,
        builder.chunks,
        "accepted" if accepted else "rejected",
        seconds,
        builder.total / max(seconds, 1e-9),
        picked_up,
        waited,
    )
    if not done:
        return "lost"
    if accepted:
        _start(ctx, model)
    return "queued" if accepted else "failed"


def _start(ctx: WorkerContext, model: str) -> None:
    """Dispatch the new chunks now rather than at the next dispatch round."""
    from worker.dispatcher import dispatch_model

    try:
        dispatch_model(app=ctx.app, r=ctx.redis, cfg=ctx.cfg, model=model)
    except Exception as exc:  # the housekeeper's next round dispatches them anyway
        log.info("could not dispatch %s's chunks right away: %s", model, exc)


def _chunk_size(
    ctx: WorkerContext,
    runner: Any,
    blocks: Iterator[bytes],
    check: Callable[[dict[str, Any]], tuple[str | None, Any]],
    endpoint: str | None,
    cost: int = 1,
) -> int:
    """Items per chunk for this job: about chunk_target_seconds of the model's compute,
    over the cost of one of its items (in plain items: an explained one costs many)."""
    size = chunk_size_for(
        _item_seconds(ctx, runner, blocks, check, endpoint),
        default=runner.spec.chunk_size,
        target_seconds=ctx.cfg.chunk_target_seconds,
        max_items=ctx.cfg.max_chunk_items,
    )
    return max(1, size // cost)


def _item_seconds(
    ctx: WorkerContext,
    runner: Any,
    blocks: Iterator[bytes],
    check: Callable[[dict[str, Any]], tuple[str | None, Any]],
    endpoint: str | None,
) -> float | None:
    """Compute seconds per item of this model: from its recent chunks, else timed on a
    sample of the file's first lines (embed and classify only: a sample of generate
    would take as long as a chunk)."""
    with read_session(ctx.cfg.database_url) as session:
        known = item_seconds(session=session, model=runner.spec.name)
    if known is not None or runner.task not in ("embed", "classify", "classify_image"):
        return known
    sample: list[Any] = []
    try:
        for number, line in split_lines(blocks, ctx.cfg.max_line_bytes):
            if len(sample) >= CALIBRATION_ITEMS:
                break
            if is_blank(line):
                continue
            try:
                sample.append(check(parse_object(number, line))[1])
            except (LineError, ItemInvalid):
                continue
    finally:
        close = getattr(blocks, "close", None)
        if close:
            close()
    if len(sample) < 16:
        return None
    if endpoint is not None:
        run: Callable[[list[Any]], Any] = partial(run_requests, runner, endpoint, job_params={})
    else:
        run = partial(runner.run, params=parse_params(runner.task, {}))
    run(sample[:8])  # the first pass pays for warm-up
    started = time.perf_counter()
    run(sample)
    return (time.perf_counter() - started) / len(sample)


def _write(ctx: WorkerContext, job_id: str, token: str, rows: list[dict[str, Any]]) -> None:
    """Insert chunk rows (none: only extend the lease) while the ingest holds the job."""
    with write_session(ctx.cfg.database_url) as session:
        ok = add_chunks(
            session=session,
            job_id=job_id,
            token=token,
            rows=rows,
            now=time.time(),
            lease=ctx.cfg.ingest_lease_seconds,
        )
    if not ok:
        raise LeaseLost(job_id)
