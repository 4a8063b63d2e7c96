"""The body of the finalize task: write a finished batch's output and error files (OpenAI
batch lines, in input order, one bucket of chunks at a time), under the batch's finalize
lease; then the batch takes its final status. A worker that dies mid-way lets the lease
lapse, and the next finalize starts over (the half-written files are abandoned uploads,
swept like any other)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from core.blobs import FileStorage, PartWriter, storage_for
from core.codec import unpack_indices, unpack_inputs, unpack_lines
from core.db import read_session, write_session
from core.errors import LeaseLost
from core.openai_batch_output import render_result, render_unrun
from core.result_lines import parse_result_line
from core.store.files import finish_file, forget_file, start_file
from core.store.openai_batches import finish_finalize, hold_finalize, load_finalize
from core.tables import Chunk
from worker.context import WorkerContext

log = logging.getLogger(__name__)
OUTPUT_PURPOSE = "batch_output"
HOLD_EVERY_SECONDS = 10.0


@dataclass
class _OutFile:
    """One file being written: its row id, writer, digest and counts."""

    file_id: str
    writer: PartWriter
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    lines: int = 0

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.digest.update(data)
        self.size += len(data)


@dataclass(frozen=True)
class _Batch:
    id: str
    tenant_id: str
    model: str
    endpoint: str
    finish_as: str


def _bucket_lines(batch: _Batch, rows: list[Any]) -> list[tuple[int, bytes, bool]]:
    """(index, line, failed) of every item in one bucket's chunks, in input order."""
    out: list[tuple[int, bytes, bool]] = []
    for inputs, outputs, indices, finished_at in rows:
        records = {index: (cid, body) for index, cid, body in unpack_inputs(inputs)}
        if outputs is None:  # never ran: the batch was cancelled or expired first
            for index in unpack_indices(indices):
                cid = records.get(index, (None, None))[0]
                line = render_unrun(
                    batch_id=batch.id, index=index, custom_id=cid, ends_as=batch.finish_as
                )
                out.append((index, line, True))
            continue
        created = int(finished_at or time.time())
        for raw in unpack_lines(outputs):
            result = parse_result_line(raw)
            body = records.get(result["index"], (None, None))[1]
            line, failed = render_result(
                batch_id=batch.id,
                endpoint=batch.endpoint,
                model=batch.model,
                created=created,
                body=body,
                result=result,
            )
            out.append((result["index"], line, failed))
    out.sort(key=lambda item: item[0])
    return out


def run_finalize(ctx: WorkerContext, job_id: str, token: str) -> str:
    """Write one batch's files; returns what became of it (for logs and tests)."""
    cfg, db = ctx.cfg, ctx.cfg.database_url
    with read_session(db) as session:
        job = load_finalize(session=session, job_id=job_id, token=token)
        if job is None:
            return "not_held"
        batch = _Batch(
            job.id, job.tenant_id, job.model, job.endpoint or "", job.finish_as or "completed"
        )
    storage = storage_for(database_url=db, files_dir=cfg.files_dir, part_bytes=cfg.file_part_bytes)
    files: dict[bool, _OutFile] = {}
    with write_session(db) as session:
        for failed, kind in ((False, "output"), (True, "error")):
            row = start_file(
                session=session,
                tenant_id=batch.tenant_id,
                filename=f"{batch.id}_{kind}.jsonl",
                purpose=OUTPUT_PURPOSE,
                storage=storage.name,
            )
            files[failed] = _OutFile(row.id, storage.writer(row.id))
    started = time.monotonic()
    try:
        _write_all(ctx, batch, token, files)
        for f in files.values():
            f.writer.close()
        kept = _keep_files(ctx, storage, files)
        with write_session(db) as session:
            done = finish_finalize(
                session=session,
                job_id=batch.id,
                token=token,
                output_file_id=kept.get(False),
                error_file_id=kept.get(True),
                now=time.time(),
            )
        if not done:
            raise LeaseLost(batch.id)
    except BaseException as exc:
        _discard(ctx, storage, files)
        if isinstance(exc, LeaseLost):
            log.info("finalize of %s stopped: its lease was lost", batch.id)
            return "lost"
        raise
    log.info(
        "finalize of %s (%s): %d output and %d error lines in %.1fs",
        batch.id,
        batch.finish_as,
        files[False].lines,
        files[True].lines,
        time.monotonic() - started,
    )
    return batch.finish_as


def _write_all(ctx: WorkerContext, batch: _Batch, token: str, files: dict[bool, _OutFile]) -> None:
    """Every item's line into its file, bucket by bucket, holding the lease as it goes."""
    db = ctx.cfg.database_url
    after, held = -1, time.monotonic()
    while True:
        with read_session(db) as session:
            bucket = session.scalar(
                select(func.min(Chunk.bucket)).where(Chunk.job_id == batch.id, Chunk.bucket > after)
            )
            if bucket is None:
                return
            rows = session.execute(
                select(Chunk.inputs, Chunk.outputs, Chunk.item_indices, Chunk.finished_at).where(
                    Chunk.job_id == batch.id, Chunk.bucket == bucket
                )
            ).all()
        after = bucket
        for _, line, failed in _bucket_lines(batch, list(rows)):
            out = files[failed]
            out.write(line + b"\n")
            out.lines += 1
        if time.monotonic() - held > HOLD_EVERY_SECONDS:
            held = time.monotonic()
            with write_session(db) as session:
                if not hold_finalize(
                    session=session,
                    job_id=batch.id,
                    token=token,
                    now=time.time(),
                    lease=ctx.cfg.ingest_lease_seconds,
                ):
                    raise LeaseLost(batch.id)


def _keep_files(
    ctx: WorkerContext, storage: FileStorage, files: dict[bool, _OutFile]
) -> dict[bool, str]:
    """Mark the files with lines as finished; remove an empty one (its id stays null)."""
    kept: dict[bool, str] = {}
    with write_session(ctx.cfg.database_url) as session:
        for failed, f in files.items():
            if f.lines == 0:
                forget_file(session=session, file_id=f.file_id)
                continue
            finish_file(
                session=session,
                file_id=f.file_id,
                purpose=OUTPUT_PURPOSE,
                written=f,
                expires_after_seconds=ctx.cfg.file_retention_days * 86400,
            )
            kept[failed] = f.file_id
    for failed, f in files.items():
        if failed not in kept:
            storage.delete(f.file_id)
    return kept


def _discard(ctx: WorkerContext, storage: FileStorage, files: dict[bool, _OutFile]) -> None:
    """Remove the files of a finalize that did not finish (best effort: the retention sweep
    removes stale uploads anyway)."""
    try:
        with write_session(ctx.cfg.database_url) as session:
            for f in files.values():
                forget_file(session=session, file_id=f.file_id)
        for f in files.values():
            f.writer.abort()
            storage.delete(f.file_id)  # a closed directory file is no longer a .partial
    except Exception:
        log.exception("could not remove the files of an unfinished finalize")
