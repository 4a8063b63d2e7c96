"""The native jobs API: submit, list, get (with long-poll), results, cancel."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.deps import STRICT_QUERY, TenantDep
from api.json_route import OrjsonRoute
from api.limits import check_rate
from api.result_formats import FORMATS, ResultFormat, encode_results
from api.schemas import ERROR_RESPONSES, JobCreate, JobList, JobOut
from api.validation import validate_job, validate_settings
from api.views import change_signature, job_out
from core import states
from core.chunking import chunk_size_for
from core.constants import nudge_key
from core.contracts.token_counts import char_lengths, counter_for
from core.db import read_session, write_session
from core.errors import Conflict, NotFound
from core.store.chunk_stats import item_seconds
from core.store.files import get_file
from core.store.ingest import create_file_job
from core.store.jobs import (
    JobSpec,
    cancel_job,
    create_job,
    get_job,
    list_jobs,
    prepare_chunks,
)
from core.store.results import failed_items, stream_results
from core.tables import Job

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)
POLL_SECONDS = 0.25
# A plain GET of a job may answer from what this process read this long ago: a hundred
# clients polling one job then cost a few database reads a second, not one each.
STATUS_CACHE_SECONDS = 0.25


def _load(db: str, tenant_id: str, job_id: str) -> Job:
    with read_session(db) as session:
        job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", param="job_id")
    return job


@router.post("", status_code=201, response_model=JobOut, summary="Submit a job")
def submit_job(body: JobCreate, tenant: TenantDep, request: Request) -> JobOut:
    """Validate every input, then create the job and its chunks in one transaction."""
    state = request.app.state
    if body.input_file_id is not None:
        job = _submit_file_job(body, tenant.id, state)
    else:
        spec = validate_job(body, state.registry, state.settings, measure=counter_for)
        count_submission(state, tenant.id)
        spec = replace(spec, chunk_size=_chunk_size(state.settings, spec.model, spec.chunk_size))
        chunks = prepare_chunks(spec)
        with write_session(state.settings.database_url) as session:
            job = create_job(session=session, tenant_id=tenant.id, spec=spec, chunks=chunks)
    nudge_dispatch(state, job.model)
    return job_out(job)


def nudge_dispatch(state: Any, model: str) -> None:
    """Wake a dispatcher now; without it the next poll (a second) finds the job anyway."""
    try:
        key = nudge_key(state.settings.redis_prefix, model)
        state.redis.pipeline().rpush(key, 1).ltrim(key, -8, -1).expire(key, 60).execute()
    except RedisError as exc:
        log.info("dispatch nudge not sent (%s); the next dispatch poll finds the job", exc)


def _chunk_size(cfg: Any, model: str, default: int) -> int:
    """The model's chunk_size, grown to about chunk_target_seconds of its recent compute."""
    with read_session(cfg.database_url) as session:
        per_item = item_seconds(session=session, model=model)
    return chunk_size_for(
        per_item,
        default=default,
        target_seconds=cfg.chunk_target_seconds,
        max_items=cfg.max_chunk_items,
    )


def count_submission(state: Any, tenant_id: str) -> None:
    check_rate(
        state.redis,
        prefix=state.settings.redis_prefix,
        tenant_id=tenant_id,
        per_minute=state.settings.jobs_per_minute,
    )


def _submit_file_job(body: JobCreate, tenant_id: str, state: Any) -> Job:
    """A job in `validating` for a file of the tenant's; a worker checks its lines."""
    cfg = state.settings
    spec, params = validate_settings(body, state.registry, cfg)
    with read_session(cfg.database_url) as session:
        file = get_file(session=session, tenant_id=tenant_id, file_id=body.input_file_id or "")
    if file is None:
        raise NotFound(f"no file {body.input_file_id!r}", param="input_file_id")
    count_submission(state, tenant_id)
    with write_session(cfg.database_url) as session:
        return create_file_job(
            session=session,
            tenant_id=tenant_id,
            model=spec.name,
            task=spec.task,
            params=params,
            priority=body.priority,
            metadata=dict(body.metadata),
            input_file_id=file.id,
            lines=file.lines,
            on_invalid=body.on_invalid,
            expires_after_seconds=body.expires_after or cfg.job_retention_days * 86400,
        )


@router.get("", response_model=JobList, summary="List your jobs, newest first")
def list_my_jobs(
    tenant: TenantDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a job id")] = None,
) -> JobList:
    """One page of the caller's jobs; pass next_cursor as `after` for the next."""
    with read_session(request.app.state.settings.database_url) as session:
        rows = list_jobs(session=session, tenant_id=tenant.id, limit=limit + 1, after=after)
    page = rows[:limit]
    more = len(rows) > limit
    return JobList(
        data=[job_out(j) for j in page],
        has_more=more,
        next_cursor=page[-1].id if more and page else None,
    )


@router.get("/{job_id}", response_model=JobOut, summary="Get a job's status and progress")
async def get_my_job(
    job_id: str,
    tenant: TenantDep,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0, le=300, description="Long-poll: seconds to wait for a change of status or counts"
        ),
    ] = 0,
) -> JobOut:
    """The job now, or as soon as its status or counts change within `wait` seconds."""
    state = request.app.state
    db = state.settings.database_url
    job = state.job_cache.get((tenant.id, job_id))
    if job is None or wait > 0:
        job = await run_in_threadpool(_load, db, tenant.id, job_id)
        state.job_cache.put((tenant.id, job_id), job)
    wait = min(wait, state.settings.max_wait_seconds)
    if wait > 0 and job.status not in states.JOB_TERMINAL:
        before = change_signature(job)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            job = await run_in_threadpool(_load, db, tenant.id, job_id)
            if change_signature(job) != before:
                break
    return job_out(job)


@router.get(
    "/{job_id}/results",
    summary="Stream results as JSONL, CSV or Parquet, in input order",
    response_class=StreamingResponse,
    responses={200: {"content": {f.media_type: {} for f in FORMATS.values()}}},
)
def job_results(
    job_id: str,
    tenant: TenantDep,
    request: Request,
    fmt: Annotated[
        ResultFormat,
        Query(alias="format", description="jsonl (as stored), csv, or parquet"),
    ] = "jsonl",
    only: Annotated[
        Literal["failed"] | None, Query(description="`failed`: only the failed items")
    ] = None,
) -> StreamingResponse:
    """Finished items so far (a running job gives its finished ones), in input order."""
    db = request.app.state.settings.database_url
    job = _load(db, tenant.id, job_id)
    dimensions = None
    if fmt == "parquet" and job.task == "embed":
        spec = request.app.state.registry.get(job.model)
        dimensions = (job.params or {}).get("dimensions") or (spec and spec.output_size())
    blocks = stream_results(session_factory=partial(read_session, db), job_id=job.id)
    info = FORMATS[fmt]
    return StreamingResponse(
        encode_results(
            blocks, fmt=fmt, task=job.task, dimensions=dimensions, only_failed=only == "failed"
        ),
        media_type=info.media_type,
        headers={
            "X-Sluice-Job-Status": job.status,
            "Content-Disposition": f'attachment; filename="{job.id}.{info.extension}"',
        },
    )


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel_my_job(job_id: str, tenant: TenantDep, request: Request) -> JobOut:
    """Stop a job: unstarted chunks at once, running ones at their next check."""
    with write_session(request.app.state.settings.database_url) as session:
        job = cancel_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", param="job_id")
    request.app.state.job_cache.put((tenant.id, job_id), job)  # no stale status after this
    return job_out(job)


@router.post(
    "/{job_id}/retry", status_code=201, response_model=JobOut, summary="Retry the failed items"
)
def retry_my_job(job_id: str, tenant: TenantDep, request: Request) -> JobOut:
    """A new job of the finished job's failed items (same model, params, priority and
    metadata; custom_ids kept), linked to it by `retry_of`. Lines that failed validation
    are not retried: their input cannot run."""
    state = request.app.state
    cfg = state.settings
    job = _load(cfg.database_url, tenant.id, job_id)
    if job.endpoint is not None:
        raise Conflict(
            "a batch's failed requests are in its error file; submit them as a new batch",
            code="batch_retry_unsupported",
            param="job_id",
        )
    if job.status not in states.JOB_TERMINAL:
        raise Conflict(
            f"job is {job.status}; retry it when it has finished",
            code="job_not_finished",
            param="job_id",
        )
    items = failed_items(session_factory=partial(read_session, cfg.database_url), job_id=job.id)
    if not items:
        raise Conflict("the job has no failed items to retry", code="nothing_to_retry")
    count_submission(state, tenant.id)
    spec = JobSpec(
        model=job.model,
        task=job.task,
        items=items,
        params=job.params,
        priority=job.priority,
        metadata=job.meta,
        chunk_size=_chunk_size(
            cfg,
            job.model,
            state.registry[job.model].chunk_size if job.model in state.registry else 512,
        ),
        expires_after_seconds=cfg.job_retention_days * 86400,
        lengths=char_lengths([v for _, v in items]),
        bucket_window=cfg.bucket_window_items,
        retry_of=job.id,
    )
    chunks = prepare_chunks(spec)
    with write_session(cfg.database_url) as session:
        new = create_job(session=session, tenant_id=tenant.id, spec=spec, chunks=chunks)
    nudge_dispatch(state, new.model)
    return job_out(new)
