"""The OpenAI-compatible batches API: create from a file of request lines, retrieve, list,
cancel. A batch is a job (its native view is /v1/jobs/{id}) whose lines are requests to
one endpoint; when it ends, a worker writes its output and error files."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import STRICT_QUERY, TenantDep
from api.json_route import OrjsonRoute
from api.openai_batch_schemas import BatchCreate, BatchList, BatchOut
from api.openai_batch_views import batch_out
from api.routes.jobs import count_submission, nudge_dispatch
from api.schemas import ERROR_RESPONSES
from api.validation import check_metadata
from core import states
from core.blobs import storage_named
from core.contracts.openai_requests import ENDPOINT_TASKS
from core.db import read_session, write_session
from core.errors import Conflict, InvalidInput, ModelUnavailable, NotFound
from core.jsonl import LineError, is_blank, parse_object, split_lines
from core.store.files import get_file
from core.store.ingest import create_file_job
from core.store.jobs import cancel_job, get_job, list_jobs
from core.tables import File, Job

router = APIRouter(
    prefix="/v1/batches",
    tags=["batches"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 7 * 86400
BATCH_PURPOSE = "batch"


def window_seconds(text: str) -> int:
    """Seconds of a completion window such as "24h" (1m to 7d)."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", text)
    seconds = int(match.group(1)) * WINDOW_UNITS[match.group(2)] if match else 0
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidInput(
            'completion_window must be "24h", or a window from 1m to 7d such as "1h"',
            code="invalid_completion_window",
            param="completion_window",
        )
    return seconds


def _first_model(request: Request, file: File) -> str:
    """The model named by the file's first request (every other line must name it too,
    which the ingest checks)."""
    cfg = request.app.state.settings
    storage = storage_named(file.storage, database_url=cfg.database_url, files_dir=cfg.files_dir)
    lines = split_lines(storage.read(file.id), cfg.max_line_bytes)
    try:
        for number, line in lines:
            if is_blank(line):
                continue
            body = parse_object(number, line).get("body")
            model = body.get("model") if isinstance(body, dict) else None
            if not isinstance(model, str):
                raise InvalidInput(
                    f"line {number}: the request has no body.model",
                    code="invalid_batch_file",
                    param="input_file_id",
                    details={"line": number},
                )
            return model
    except LineError as exc:
        raise InvalidInput(
            f"line {exc.line}: {exc.message}",
            code="invalid_batch_file",
            param="input_file_id",
            details={"line": exc.line},
        ) from None
    finally:
        lines.close()
    raise InvalidInput("the file has no requests", code="empty_file", param="input_file_id")


@router.post("", response_model=BatchOut, summary="Create a batch (OpenAI-compatible)")
def create_batch(body: BatchCreate, tenant: TenantDep, request: Request) -> BatchOut:
    """The batch starts `validating`: a worker checks every line (its url, method, body and
    model) before any request runs."""
    state = request.app.state
    cfg = state.settings
    task = ENDPOINT_TASKS.get(body.endpoint)
    if task is None:
        raise InvalidInput(
            f"endpoint {body.endpoint!r} is not supported; use one of " + ", ".join(ENDPOINT_TASKS),
            code="unsupported_endpoint",
            param="endpoint",
        )
    window = window_seconds(body.completion_window)
    metadata = body.metadata or {}
    check_metadata(metadata, cfg.max_metadata_pairs)
    with read_session(cfg.database_url) as session:
        file = get_file(session=session, tenant_id=tenant.id, file_id=body.input_file_id)
    if file is None:
        raise NotFound(f"no file {body.input_file_id!r}", param="input_file_id")
    if file.purpose != BATCH_PURPOSE:
        raise InvalidInput(
            f"the file was uploaded with purpose {file.purpose!r}; batches take purpose batch",
            code="invalid_file_purpose",
            param="input_file_id",
        )
    model = _first_model(request, file)
    spec = state.registry.get(model)
    if spec is None:
        raise ModelUnavailable(
            f"the requests name model {model!r}, which is not registered; GET /v1/models "
            "lists them",
            code="model_not_found",
            param="body.model",
        )
    if spec.task != task:
        raise InvalidInput(
            f"model {model!r} does {spec.task}; {body.endpoint} needs a {task} model",
            code="model_task_mismatch",
            param="body.model",
        )
    count_submission(state, tenant.id)
    with write_session(cfg.database_url) as session:
        job = create_file_job(
            session=session,
            tenant_id=tenant.id,
            model=model,
            task=task,
            params={},
            priority=0,
            metadata=dict(metadata),
            input_file_id=file.id,
            lines=file.lines,
            on_invalid=body.on_invalid,
            # Results outlive the window by the usual retention.
            expires_after_seconds=window + cfg.job_retention_days * 86400,
            endpoint=body.endpoint,
            completion_window=body.completion_window,
            window_seconds=window,
        )
    nudge_dispatch(state, model)
    return batch_out(job)


def _load(request: Request, tenant_id: str, batch_id: str) -> Job:
    with read_session(request.app.state.settings.database_url) as session:
        job = get_job(session=session, tenant_id=tenant_id, job_id=batch_id)
    if job is None or job.endpoint is None:
        raise NotFound(f"no batch {batch_id!r}", param="batch_id")
    return job


@router.get("", response_model=BatchList, summary="List your batches, newest first")
def list_batches(
    tenant: TenantDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="Cursor: a batch id")] = None,
) -> BatchList:
    """One page of batches; pass the page's last_id as `after` for the next."""
    with read_session(request.app.state.settings.database_url) as session:
        rows = list_jobs(
            session=session, tenant_id=tenant.id, limit=limit + 1, after=after, batches_only=True
        )
    page = [batch_out(j) for j in rows[:limit]]
    return BatchList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(rows) > limit,
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="Retrieve a batch")
def retrieve_batch(batch_id: str, tenant: TenantDep, request: Request) -> BatchOut:
    """The batch's status, request counts, usage, timestamps and files."""
    return batch_out(_load(request, tenant.id, batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchOut, summary="Cancel a batch")
def cancel_batch(batch_id: str, tenant: TenantDep, request: Request) -> BatchOut:
    """`cancelling` until running requests stop and the files of what finished are
    written, then `cancelled`; requests that never ran are in the error file."""
    job = _load(request, tenant.id, batch_id)
    if job.status in (states.COMPLETED, states.FAILED, states.EXPIRED):
        raise Conflict(
            f"the batch is {job.status}; only an unfinished batch can be cancelled",
            code="batch_not_cancellable",
            param="batch_id",
        )
    with write_session(request.app.state.settings.database_url) as session:
        cancelled = cancel_job(session=session, tenant_id=tenant.id, job_id=batch_id)
    if cancelled is None:
        raise NotFound(f"no batch {batch_id!r}", param="batch_id")
    request.app.state.job_cache.put((tenant.id, batch_id), cancelled)
    return batch_out(cancelled)
