"""The body of the ingest task: read a job's file under the job's ingest lease, check
every line, write length-bucketed chunks in batches, then queue the job or fail it with
its errors (line numbers and codes)."""

from __future__ import annotations

import logging
import time
from typing import Any

from core.db import write_session
from core.jsonl import LineError, split_lines
from core.storage import storage_named
from core.store.files import PROCESSED
from core.store.ingest import (
    accept_ingest,
    add_chunks,
    clear_chunks,
    hold_ingest,
    load_ingest,
    reject_ingest,
)
from core.tables import File
from models.items import ItemLimits
from worker.context import WorkerContext
from worker.ingest_builder import ChunkBuilder, IngestSettings

log = logging.getLogger(__name__)
ROWS_PER_INSERT = 64
HOLD_EVERY_LINES = 20_000


class LeaseLost(Exception):
    """Another ingest holds the job now, or it was cancelled: stop without writing."""


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
        model, skip = job.model, job.on_invalid == "skip"
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
    builder = ChunkBuilder(
        IngestSettings(
            model=model,
            task=spec.task,
            limits=ItemLimits(cfg.max_input_chars, cfg.max_custom_id_chars),
            chunk_size=spec.chunk_size,
            window=cfg.bucket_window_items,
            skip_invalid=skip,
            max_errors=cfg.max_validation_errors,
            max_items=cfg.max_items_per_file_job,
        )
    )
    storage = storage_named(storage_name, database_url=db, files_dir=cfg.files_dir)
    started = time.monotonic()
    try:
        pending: list[dict[str, Any]] = []
        try:
            for number, line in split_lines(storage.read(file_id or ""), cfg.max_line_bytes):
                pending += builder.add(number, line)
                if len(pending) >= ROWS_PER_INSERT:
                    _write(ctx, job_id, token, pending)
                    pending = []
                elif number % HOLD_EVERY_LINES == 0:
                    _hold(ctx, job_id, token)
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
        "ingest of %s: %d items, %d invalid, %d chunks, %s in %.1fs (%.0f lines/s)",
        job_id,
        builder.total,
        builder.invalid,
        builder.chunks,
        "accepted" if accepted else "rejected",
        seconds,
        builder.total / max(seconds, 1e-9),
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


def _write(ctx: WorkerContext, job_id: str, token: str, rows: list[dict[str, Any]]) -> None:
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


def _hold(ctx: WorkerContext, job_id: str, token: str) -> None:
    with write_session(ctx.cfg.database_url) as session:
        ok = hold_ingest(
            session=session,
            job_id=job_id,
            token=token,
            now=time.time(),
            lease=ctx.cfg.ingest_lease_seconds,
        )
    if not ok:
        raise LeaseLost(job_id)
