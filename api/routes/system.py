"""Health, readiness and the model list."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import STRICT_QUERY, TenantDep
from api.readiness import Readiness
from api.schemas import ERROR_RESPONSES, ModelList, ModelOut
from core.constants import WORKER_TTL_SECONDS, workers_key

router = APIRouter()
READY_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"description": "The database or Redis does not answer"}
}


@router.get("/healthz", tags=["system"], summary="The process is up")
@router.head("/healthz", tags=["system"], summary="The process is up (no body)")
def healthz() -> dict[str, str]:
    """Liveness: answers while the process runs (HEAD too, for probes that send it)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["system"],
    summary="Database and Redis are reachable",
    responses=READY_RESPONSES,
)
@router.head("/readyz", tags=["system"], summary="Readiness (no body)", responses=READY_RESPONSES)
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database and Redis answer, else 503. The schema was checked
    when the process started; models that no live worker serves are listed (a worker may
    start later, so they do not fail the probe). Read at most once a second per process."""
    readiness: Readiness = request.app.state.readiness
    report = readiness.report()
    return JSONResponse(report.body, status_code=200 if report.ready else 503)


@router.get(
    "/v1/models",
    response_model=ModelList,
    tags=["models"],
    summary="The registered models",
    responses={k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 503)},
    dependencies=STRICT_QUERY,
)
def list_models(request: Request, _tenant: TenantDep) -> ModelList:
    """Each model's task, output size, limits, and how many live workers serve it."""
    state = request.app.state
    now = time.time()
    out = []
    for spec in state.registry.values():
        try:
            live: int | None = int(
                state.redis.zcount(
                    workers_key(state.settings.redis_prefix, spec.name),
                    now - WORKER_TTL_SECONDS,
                    "+inf",
                )
            )
        except Exception:
            live = None
        out.append(
            ModelOut(
                id=spec.name,
                task=spec.task,
                dimensions=spec.output_size(),
                labels=spec.label_names(),
                max_length=spec.max_length,
                dtype=spec.dtype,
                chunk_size=spec.chunk_size,
                live_workers=live,
            )
        )
    return ModelList(data=out)
