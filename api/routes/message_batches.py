"""The Anthropic-compatible Message Batches API: create (inline requests, one or several
models), retrieve, list, cancel, delete, and the results (JSONL in request order). A
batch owns one job per model (each visible at /v1/jobs/{id}); errors here take
Anthropic's envelope (api/anthropic_errors.py)."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import STRICT_QUERY, CallerDep, SessionDep, TenantDep, found
from api.json_route import OrjsonRoute
from api.message_batch_views import (
    ANTHROPIC_ERROR_RESPONSES,
    DeletedMessageBatch,
    MessageBatchCreate,
    MessageBatchList,
    MessageBatchOut,
    has_ended,
    message_batch_out,
)
from api.routes.jobs import submitter
from core.db import read_session, write_session
from core.errors import InvalidInput
from core.jsonl import in_blocks
from core.store.audit import MESSAGE_BATCH_CANCEL, Actor, record_event
from core.store.message_batches import (
    batch_jobs,
    cancel_message_batch,
    delete_message_batch,
    get_message_batch,
    list_message_batches,
)
from core.store.message_results import stream_message_results
from core.store.results import STREAM_FLUSH_BYTES
from core.submit.message_batches import submit_message_batch
from core.tables import Job, MessageBatch

router = APIRouter(
    prefix="/v1/messages/batches",
    tags=["message batches"],
    responses=ANTHROPIC_ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)


def _base_url(request: Request) -> str:
    return str(request.base_url)


def _load(session: Session, tenant_id: str, batch_id: str) -> tuple[MessageBatch, list[Job]]:
    batch = found(
        get_message_batch(session=session, tenant_id=tenant_id, batch_id=batch_id),
        f"no message batch {batch_id!r}",
        param="message_batch_id",
    )
    return batch, batch_jobs(session=session, batch=batch)


@router.post("", response_model=MessageBatchOut, summary="Create a message batch (Anthropic)")
def create_message_batch(
    body: MessageBatchCreate, tenant: TenantDep, request: Request
) -> MessageBatchOut:
    """Every request is checked before anything is written; the batch's requests are
    grouped into one job per model, queued at once."""
    batch = submit_message_batch(submitter(request), tenant_id=tenant.id, requests=body.requests)
    with read_session(request.app.state.settings.database_url) as session:
        jobs = batch_jobs(session=session, batch=batch)
    return message_batch_out(batch, jobs, _base_url(request))


@router.get("", response_model=MessageBatchList, summary="List message batches, newest first")
def list_batches(
    tenant: TenantDep,
    session: SessionDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    before_id: Annotated[str | None, Query(max_length=64)] = None,
    after_id: Annotated[str | None, Query(max_length=64)] = None,
) -> MessageBatchList:
    """One page: `after_id` pages to older batches, `before_id` to newer ones."""
    if before_id and after_id:
        raise InvalidInput("give before_id or after_id, not both", param="before_id")
    rows = list_message_batches(
        session=session,
        tenant_id=tenant.id,
        limit=limit + 1,
        before_id=before_id,
        after_id=after_id,
    )
    has_more = len(rows) > limit
    # The extra row is beyond the page: the oldest when paging older, the newest otherwise.
    page = (rows[1:] if before_id else rows[:limit]) if has_more else rows
    ids = [i for b in page for i in b.job_ids]
    by_id = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    data = [
        message_batch_out(b, [by_id[i] for i in b.job_ids if i in by_id], _base_url(request))
        for b in page
    ]
    return MessageBatchList(
        data=data,
        has_more=has_more,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


@router.get("/{message_batch_id}", response_model=MessageBatchOut, summary="Retrieve one")
def retrieve_batch(
    message_batch_id: str, tenant: TenantDep, session: SessionDep, request: Request
) -> MessageBatchOut:
    """The batch's processing status and live request counts."""
    batch, jobs = _load(session, tenant.id, message_batch_id)
    return message_batch_out(batch, jobs, _base_url(request))


@router.post("/{message_batch_id}/cancel", response_model=MessageBatchOut, summary="Cancel one")
def cancel_batch(message_batch_id: str, caller: CallerDep, request: Request) -> MessageBatchOut:
    """`canceling` until running requests stop, then `ended`; requests that never ran are
    `canceled` in the results. Cancelling an ended batch changes nothing."""
    db = request.app.state.settings.database_url
    tenant, now = caller.tenant, time.time()
    with write_session(db) as session:
        cancelled = found(
            cancel_message_batch(
                session=session, tenant_id=tenant.id, batch_id=message_batch_id, now=now
            ),
            f"no message batch {message_batch_id!r}",
            param="message_batch_id",
        )
        if cancelled.cancel_initiated_at == now:  # this request stopped it: audited
            record_event(
                session=session,
                action=MESSAGE_BATCH_CANCEL,
                actor=Actor(name=caller.key_id, tenant_id=tenant.id),
                now=now,
                tenant_id=tenant.id,
                target_id=message_batch_id,
            )
    with read_session(db) as session:
        batch, jobs = _load(session, tenant.id, message_batch_id)
    for job in jobs:
        request.app.state.job_watcher.publish(job.id, job)
    return message_batch_out(batch, jobs, _base_url(request))


@router.delete(
    "/{message_batch_id}", response_model=DeletedMessageBatch, summary="Delete an ended one"
)
def delete_batch(message_batch_id: str, tenant: TenantDep, request: Request) -> DeletedMessageBatch:
    """The batch and its results are deleted; a batch still processing must be canceled
    first (400), as Anthropic's."""
    with write_session(request.app.state.settings.database_url) as session:
        batch, jobs = _load(session, tenant.id, message_batch_id)
        if not has_ended(jobs):
            raise InvalidInput(
                "the batch is still processing; cancel it, then delete it once it has ended",
                code="batch_not_ended",
                param="message_batch_id",
            )
        delete_message_batch(session=session, batch=batch)
    return DeletedMessageBatch(id=message_batch_id)


@router.get(
    "/{message_batch_id}/results",
    response_class=StreamingResponse,
    summary="Stream an ended batch's results (JSONL, in request order)",
    responses={200: {"content": {"application/x-jsonl": {}}}},
)
def batch_results(message_batch_id: str, tenant: TenantDep, request: Request) -> StreamingResponse:
    """One line per request: succeeded (with its message), errored, canceled or expired."""
    db = request.app.state.settings.database_url
    with read_session(db) as session:
        batch, jobs = _load(session, tenant.id, message_batch_id)
    if not has_ended(jobs):
        raise InvalidInput(
            "the batch has not ended; its results_url is set once it has",
            code="batch_not_ended",
            param="message_batch_id",
        )
    if len(jobs) != len(batch.job_ids):
        raise InvalidInput("the batch's results have expired", code="results_expired")
    lines = stream_message_results(
        session_factory=partial(read_session, db), batch=batch, jobs=jobs
    )
    return StreamingResponse(in_blocks(lines, STREAM_FLUSH_BYTES), media_type="application/x-jsonl")
