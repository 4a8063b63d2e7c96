"""The native jobs API: submit, list, get (with long-poll), results, cancel."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.deps import (
    STRICT_QUERY,
    CallerDep,
    SessionDep,
    TenantDep,
    found,
    page_of,
    require_admin,
)
from api.idempotency import IdempotencyKeyHeader, claim_of, mark
from api.job_events import job_json
from api.job_watch import FRESH_READ_TIMEOUT_SECONDS, JobWatcher
from api.json_route import OrjsonRoute
from api.openapi_links import JOB_LINKS, linked
from api.result_formats import FORMATS, ResultFormat, encode_results
from api.schemas import ERROR_RESPONSES, JobCreate, JobList, JobOut, RetryRequest
from api.views import job_out
from core import states
from core.db import read_session, write_session
from core.errors import NotFound, shown
from core.store.audit import JOB_CANCEL, Actor, cancel_recorded
from core.store.idempotency import IdempotencyClaim
from core.store.jobs import get_job, list_jobs
from core.store.results import stream_results
from core.store.tenants import Caller, tenant_named
from core.submit.idempotency import submit_once
from core.submit.jobs import (
    JOB_OPTION_NAMES,
    JobOptions,
    Submitter,
    submit_file,
    submit_inline,
)
from core.submit.retry import submit_retry
from core.tables import Job

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)
# A long-poll whose job does not change looks this often whether its client has gone.
DISCONNECT_CHECK_SECONDS = 1.0


def _load(db: str, tenant_id: str | None, job_id: str) -> Job:
    with read_session(db) as session:
        job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    return found(job, f"no job {shown(job_id)}", param="job_id")


def visible(job: Job | None, owner: str | None, job_id: str) -> Job:
    """A job read by id, if the caller may read it (owner None: an admin key); NotFound
    otherwise, as for a job that does not exist."""
    if job is None or (owner is not None and job.tenant_id != owner):
        raise NotFound(f"no job {shown(job_id)}", param="job_id")
    return job


def readable_by(caller: Caller) -> str | None:
    """The tenant whose jobs the caller may read: its own, or None (every tenant's) for an
    admin key. Writes (cancel, retry) always stay within the caller's own tenant."""
    return None if caller.is_admin else caller.tenant.id


def submitter(request: Request) -> Submitter:
    """The submission path's view of this deployment."""
    state = request.app.state
    return Submitter(cfg=state.settings, registry=state.registry, redis=state.redis)


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    summary="Submit a job",
    responses=linked(201, JOB_LINKS),
)
def submit_job(
    body: JobCreate,
    tenant: TenantDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobOut:
    """Validate every input, then create the job and its chunks in one transaction. With an
    Idempotency-Key, a repeat of the request within 24 hours answers with the first job."""
    options = JobOptions(**body.model_dump(include=set(JOB_OPTION_NAMES)))
    sub = submitter(request)

    def create(claim: IdempotencyClaim | None) -> Job:
        keyed = replace(sub, claim=claim)
        if body.input_file_id is not None:
            return submit_file(
                keyed, tenant_id=tenant.id, options=options, input_file_id=body.input_file_id
            )
        return submit_inline(keyed, tenant_id=tenant.id, options=options, inputs=body.inputs or [])

    claim = claim_of(idempotency_key, request, body)
    submitted = submit_once(sub.cfg.database_url, tenant.id, claim, create)
    mark(response, submitted)
    return job_out(submitted.job)


def listing_owner(caller: Caller, session: Session, tenant: str | None) -> str | None:
    """The tenant whose jobs a listing shows: the caller's own; for an admin key every
    tenant's (None), or `tenant`'s (an id or name). 403 for `tenant` without the admin
    scope, 404 for a tenant that does not exist."""
    if tenant is None and not caller.is_admin:
        return caller.tenant.id
    require_admin(caller)
    if tenant is None:
        return None
    return found(
        tenant_named(session=session, id_or_name=tenant),
        f"no tenant {shown(tenant)}",
        param="tenant",
    ).id


TenantQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Admin keys only: a tenant's id or name (omitted: every tenant's jobs)",
    ),
]


@router.get("", response_model=JobList, summary="List your jobs, newest first")
def list_my_jobs(
    caller: CallerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a job id")] = None,
    tenant: TenantQuery = None,
    status: Annotated[
        Literal[states.JOB_STATUSES] | None,  # type: ignore[valid-type]
        Query(description="Only jobs of this status"),
    ] = None,
    model: Annotated[
        str | None, Query(max_length=200, description="Only this model's jobs")
    ] = None,
) -> JobList:
    """One page of the caller's jobs (an admin key's: every tenant's, or `tenant`'s), of a
    status or model when asked; pass next_cursor as `after` for the next."""
    owner = listing_owner(caller, session, tenant)
    rows = list_jobs(
        session=session, tenant_id=owner, limit=limit + 1, after=after, status=status, model=model
    )
    page = page_of(rows, limit)
    return JobList(
        data=[job_out(j) for j in page.rows],
        has_more=page.has_more,
        next_cursor=page.rows[-1].id if page.has_more and page.rows else None,
    )


@router.get("/{job_id}", response_model=JobOut, summary="Get a job's status and progress")
async def get_my_job(
    job_id: str,
    caller: CallerDep,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0, le=300, description="Long-poll: seconds to wait for a change of status or counts"
        ),
    ] = 0,
) -> Response:
    """The job now, or as soon as its status or counts change within `wait` seconds."""
    state = request.app.state
    owner = readable_by(caller)
    watcher: JobWatcher[Job] = state.job_watcher
    wait = min(wait, state.settings.max_wait_seconds)
    # The job's latest read (at most an interval old) if some request watches it, else a
    # read now that the requests of the next interval share; a long-poll then waits on the
    # job's watch, whose one read per interval serves every waiter.
    deadline = time.monotonic() + wait
    async with watcher.listen(job_id) as listener:
        snapshot = await listener.fresh(watcher.interval, FRESH_READ_TIMEOUT_SECONDS)
        job = visible(snapshot.value, owner, job_id)
        while job.status not in states.JOB_TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Wakes at least once a second to notice a client that has gone.
            newer = await listener.next(snapshot.version, min(remaining, DISCONNECT_CHECK_SECONDS))
            if newer is not None:
                snapshot = newer
                visible(snapshot.value, owner, job_id)
                break
            if await request.is_disconnected():
                break
    # The body FastAPI would make of job_out(job), made once per read for every request.
    return Response(job_json(snapshot), media_type="application/json")


@router.get(
    "/{job_id}/results",
    summary="Stream results as JSONL, CSV or Parquet, in input order",
    response_class=StreamingResponse,
    responses={200: {"content": {f.media_type: {} for f in FORMATS.values()}}},
)
def job_results(
    job_id: str,
    caller: CallerDep,
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
    job = _load(db, readable_by(caller), job_id)
    dimensions = None
    if fmt == "parquet" and job.task == "embed":
        spec = request.app.state.registry.get(job.model)
        dimensions = (job.params or {}).get("dimensions") or (spec and spec.output_size())
    blocks = stream_results(session_factory=partial(read_session, db), job_id=job.id)
    info = FORMATS[fmt]
    return StreamingResponse(
        encode_results(
            blocks,
            fmt=fmt,
            task=job.task,
            dimensions=dimensions,
            only_failed=only == "failed",
            explained=bool((job.params or {}).get("explain")),
        ),
        media_type=info.media_type,
        headers={
            "X-Sluice-Job-Status": job.status,
            "Content-Disposition": f'attachment; filename="{job.id}.{info.extension}"',
        },
    )


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel_my_job(job_id: str, caller: CallerDep, request: Request) -> JobOut:
    """Stop a job: unstarted chunks at once, running ones at their next check (audited)."""
    with write_session(request.app.state.settings.database_url) as session:
        job = found(
            cancel_recorded(
                session=session,
                tenant_id=caller.tenant.id,
                job_id=job_id,
                actor=Actor(name=caller.key_id, tenant_id=caller.tenant.id),
                action=JOB_CANCEL,
                now=time.time(),
            ),
            f"no job {shown(job_id)}",
            param="job_id",
        )
    request.app.state.job_watcher.publish(job_id, job)  # no stale status after this
    return job_out(job)


@router.post(
    "/{job_id}/retry",
    status_code=201,
    response_model=JobOut,
    summary="Retry the failed items (and, when asked, those a cancel kept from running)",
    responses=linked(201, JOB_LINKS),
)
def retry_my_job(
    job_id: str,
    tenant: TenantDep,
    request: Request,
    response: Response,
    body: RetryRequest | None = None,
) -> JobOut:
    """A new job of the finished job's failed items and, with `include: ["cancelled"]`,
    the items its cancel kept from running (same model, params, priority and metadata;
    custom_ids kept), linked to it by `retry_of`; at most max_inputs_per_job items. Lines
    that failed validation are not retried: their input cannot run. A job is retried once
    per `include`: retrying it again (or concurrently) answers with that retry's job,
    marked Idempotent-Replayed."""
    job = _load(request.app.state.settings.database_url, tenant.id, job_id)
    include = (body or RetryRequest()).include
    submitted = submit_retry(submitter(request), tenant_id=tenant.id, job=job, include=include)
    mark(response, submitted)
    return job_out(submitted.job)
