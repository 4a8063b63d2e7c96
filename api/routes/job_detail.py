"""A job's inside, for the dashboard and for people: chunk states, throughput over time,
usage, download paths, and its failed items grouped by error code."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.dashboard_schemas import (
    ChunkStateOut,
    ErrorGroupOut,
    JobDetail,
    JobErrors,
    ThroughputOut,
    ThroughputPoint,
    UsageOut,
    ValidationOut,
)
from api.deps import STRICT_QUERY, CallerDep, SessionDep, found
from api.json_route import OrjsonRoute
from api.result_formats import FORMATS
from api.routes.jobs import readable_by
from api.schemas import ERROR_RESPONSES
from api.views import job_out
from core.db import read_session
from core.errors import shown
from core.store.job_errors import ErrorGroup, group_errors, validation_groups
from core.store.job_insight import chunk_states, throughput_series
from core.store.jobs import get_job

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)
# Throughput charts get at most this many buckets, whatever the job's length.
MAX_POINTS = 120


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _groups(groups: list[ErrorGroup]) -> list[ErrorGroupOut]:
    return [ErrorGroupOut(code=g.code, count=g.count, examples=g.examples) for g in groups]


@router.get(
    "/{job_id}/detail", response_model=JobDetail, summary="A job's chunks, throughput and usage"
)
def job_detail(job_id: str, caller: CallerDep, session: SessionDep) -> JobDetail:
    """The job with its chunks by status, items finished over time (from its finished
    chunks, so it survives restarts), usage, and a path for each result format."""
    job = found(
        get_job(session=session, tenant_id=readable_by(caller), job_id=job_id),
        f"no job {shown(job_id)}",
        param="job_id",
    )
    states = chunk_states(session=session, job_id=job.id)
    series = throughput_series(session=session, job_id=job.id, max_points=MAX_POINTS)
    width, start = series.bucket_seconds, series.start or 0.0
    points = [
        ThroughputPoint(t=start + i * width, items=n, items_per_second=round(w / width, 3))
        for i, (n, w) in enumerate(zip(series.items, series.worked, strict=True))
    ]
    return JobDetail(
        job=job_out(job),
        chunk_states=[ChunkStateOut(**vars(s)) for s in states],
        throughput=ThroughputOut(bucket_seconds=width, points=points),
        usage=UsageOut(
            items_total=job.total,
            items_completed=job.completed,
            items_failed=job.failed,
            prompt_tokens=job.prompt_tokens or 0,
            completion_tokens=job.completion_tokens or 0,
            compute_seconds=round(sum(s.compute_seconds for s in states), 3),
        ),
        downloads={fmt: f"/v1/jobs/{job.id}/results?format={fmt}" for fmt in FORMATS},
    )


@router.get(
    "/{job_id}/errors", response_model=JobErrors, summary="A job's failed items by error code"
)
def job_errors(
    job_id: str,
    caller: CallerDep,
    request: Request,
    examples: Annotated[int, Query(ge=0, le=10, description="Examples per code")] = 3,
) -> JobErrors:
    """Failed items grouped by code (read only from chunks that hold failures, within a
    bound: `complete` says whether every such chunk was read), plus what validating the
    input file found."""
    db = request.app.state.settings.database_url
    with read_session(db) as session:
        job = found(
            get_job(session=session, tenant_id=readable_by(caller), job_id=job_id),
            f"no job {shown(job_id)}",
            param="job_id",
        )
    report = group_errors(
        session_factory=partial(read_session, db), job_id=job.id, examples_per_code=examples
    )
    validation = None
    if job.errors:
        validation = ValidationOut(
            invalid_lines=_count(job.errors.get("invalid_lines")),
            duplicates=_count(job.errors.get("duplicates")),
            groups=_groups(validation_groups(job.errors, examples)),
        )
    return JobErrors(
        job_id=job.id,
        failed=job.failed,
        groups=_groups(report.groups),
        chunks_scanned=report.chunks_scanned,
        complete=report.complete,
        validation=validation,
    )
