"""The OpenAI-compatible batches API: create from a file of request lines, retrieve, list,
cancel. A batch is a job (its native view is /v1/jobs/{id}) whose lines are requests to
one endpoint; when it ends, a worker writes its output and error files."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import STRICT_QUERY, CallerDep, SessionDep, TenantDep, found, page_of
from api.idempotency import IdempotencyKeyHeader, claim_of, mark
from api.json_route import OrjsonRoute
from api.openai_batch_schemas import BatchCreate, BatchList, BatchOut
from api.openai_batch_views import batch_out
from api.openapi_links import BATCH_LINKS, linked
from api.routes.jobs import submitter
from api.schemas import ERROR_RESPONSES
from core import states
from core.contracts.anthropic_requests import MESSAGES_ENDPOINT
from core.db import read_session, write_session
from core.errors import Conflict, shown
from core.store.audit import BATCH_CANCEL, Actor, cancel_recorded
from core.store.idempotency import IdempotencyClaim
from core.store.jobs import get_job, list_jobs
from core.submit.idempotency import submit_once
from core.submit.openai_batches import submit_batch
from core.tables import Job

router = APIRouter(
    prefix="/v1/batches",
    tags=["batches"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)


@router.post(
    "",
    response_model=BatchOut,
    summary="Create a batch (OpenAI-compatible)",
    responses=linked(200, BATCH_LINKS),
)
def create_batch(
    body: BatchCreate,
    tenant: TenantDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> BatchOut:
    """The batch starts `validating`: a worker checks every line (its url, method, body and
    model) before any request runs. With an Idempotency-Key, a repeat of the request
    within 24 hours answers with the first batch."""
    sub = submitter(request)

    def create(claim: IdempotencyClaim | None) -> Job:
        return submit_batch(
            replace(sub, claim=claim),
            tenant_id=tenant.id,
            endpoint=body.endpoint,
            input_file_id=body.input_file_id,
            completion_window=body.completion_window,
            metadata=body.metadata or {},
            on_invalid=body.on_invalid,
            webhook=body.webhook.model_dump() if body.webhook else None,
        )

    claim = claim_of(idempotency_key, request, body)
    submitted = submit_once(sub.cfg.database_url, tenant.id, claim, create)
    mark(response, submitted)
    return batch_out(submitted.job)


def _load(session: Session, tenant_id: str, batch_id: str) -> Job:
    job = get_job(session=session, tenant_id=tenant_id, job_id=batch_id)
    is_batch = job is not None and job.endpoint not in (None, MESSAGES_ENDPOINT)
    return found(job if is_batch else None, f"no batch {shown(batch_id)}", param="batch_id")


@router.get("", response_model=BatchList, summary="List your batches, newest first")
def list_batches(
    tenant: TenantDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a batch id")] = None,
) -> BatchList:
    """One page of batches; pass the page's last_id as `after` for the next."""
    rows = list_jobs(
        session=session, tenant_id=tenant.id, limit=limit + 1, after=after, batches_only=True
    )
    page = page_of(rows, limit)
    data = [batch_out(j) for j in page.rows]
    return BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="Retrieve a batch")
def retrieve_batch(batch_id: str, tenant: TenantDep, session: SessionDep) -> BatchOut:
    """The batch's status, request counts, usage, timestamps and files."""
    return batch_out(_load(session, tenant.id, batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchOut, summary="Cancel a batch")
def cancel_batch(batch_id: str, caller: CallerDep, request: Request) -> BatchOut:
    """`cancelling` until running requests stop and the files of what finished are
    written, then `cancelled`; requests that never ran are in the error file."""
    with read_session(request.app.state.settings.database_url) as session:
        job = _load(session, caller.tenant.id, batch_id)
    if job.status in (states.COMPLETED, states.FAILED, states.EXPIRED):
        raise Conflict(
            f"the batch is {job.status}; only an unfinished batch can be cancelled",
            code="batch_not_cancellable",
            param="batch_id",
        )
    with write_session(request.app.state.settings.database_url) as session:
        cancelled = found(
            cancel_recorded(
                session=session,
                tenant_id=caller.tenant.id,
                job_id=batch_id,
                actor=Actor(name=caller.key_id, tenant_id=caller.tenant.id),
                action=BATCH_CANCEL,
                now=time.time(),
            ),
            f"no batch {shown(batch_id)}",
            param="batch_id",
        )
    request.app.state.job_watcher.publish(batch_id, cancelled)
    return batch_out(cancelled)
