"""The native jobs API: submit, list, get (with long-poll), results, cancel."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.deps import TenantDep
from api.limits import check_rate
from api.schemas import JobCreate, JobList, JobOut
from api.validation import validate_job
from api.views import change_signature, job_out
from core import states
from core.constants import nudge_key
from core.db import read_session, write_session
from core.errors import NotFound
from core.store.jobs import (
    cancel_job,
    create_job,
    get_job,
    list_jobs,
    prepare_chunks,
    stream_results,
)
from core.tables import Job
from models.token_lengths import counter_for

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
POLL_SECONDS = 0.25


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
    spec = validate_job(body, state.registry, state.settings, measure=counter_for)
    check_rate(
        state.redis,
        prefix=state.settings.redis_prefix,
        tenant_id=tenant.id,
        per_minute=state.settings.jobs_per_minute,
    )
    chunks = prepare_chunks(spec)
    with write_session(state.settings.database_url) as session:
        job = create_job(session=session, tenant_id=tenant.id, spec=spec, chunks=chunks)
    try:  # wake a dispatcher now; without it the next poll (a second) finds the job anyway
        key = nudge_key(state.settings.redis_prefix, job.model)
        state.redis.pipeline().rpush(key, 1).ltrim(key, -8, -1).expire(key, 60).execute()
    except RedisError as exc:
        log.info("dispatch nudge not sent (%s); the next dispatch poll finds the job", exc)
    return job_out(job)


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
    db = request.app.state.settings.database_url
    job = await run_in_threadpool(_load, db, tenant.id, job_id)
    wait = min(wait, request.app.state.settings.max_wait_seconds)
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
    summary="Stream results as JSONL, in input order",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def job_results(job_id: str, tenant: TenantDep, request: Request) -> StreamingResponse:
    """Finished items so far, in input order, one JSON object a line."""
    db = request.app.state.settings.database_url
    job = _load(db, tenant.id, job_id)
    return StreamingResponse(
        stream_results(session_factory=partial(read_session, db), job_id=job.id),
        media_type="application/x-ndjson",
        headers={"X-Sluice-Job-Status": job.status},
    )


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel_my_job(job_id: str, tenant: TenantDep, request: Request) -> JobOut:
    """Stop a job: unstarted chunks at once, running ones at their next check."""
    with write_session(request.app.state.settings.database_url) as session:
        job = cancel_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", param="job_id")
    return job_out(job)
