"""Prometheus's /metrics and the models' load (/v1/models/status)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import STRICT_QUERY, TenantDep
from api.metrics import exposition
from api.model_load import ModelLoad, ModelLoadCollector, ModelLoadReader
from api.monitoring_schemas import ModelStatusList, ModelStatusOut, WorkerStatusOut
from api.schemas import ERROR_RESPONSES
from core.errors import ServiceUnavailable, Unauthorized
from core.worker_info import WorkerInfo

router = APIRouter()


def _check_metrics_token(request: Request) -> None:
    """With SLUICE_METRICS_TOKEN set, only `Authorization: Bearer <it>` may scrape."""
    expected = request.app.state.settings.metrics_token
    if not expected:
        return
    scheme, given = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            "/metrics needs `Authorization: Bearer <SLUICE_METRICS_TOKEN>`",
            code="invalid_metrics_token",
        )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The Prometheus exposition: this API's metrics (every process's, summed) and the
    models' load, read at most every 1.5 s."""
    _check_metrics_token(request)
    reader: ModelLoadReader = request.app.state.model_load
    return Response(exposition(ModelLoadCollector(reader)), media_type=CONTENT_TYPE_LATEST)


def _worker_out(worker: WorkerInfo, model: str) -> WorkerStatusOut:
    serving = worker.models.get(model)
    return WorkerStatusOut(
        name=worker.name,
        host=worker.host,
        device=serving.device if serving else None,
        dtype=serving.dtype if serving else None,
        items_per_second=serving.items_per_second if serving else None,
        last_heartbeat=worker.last_heartbeat,
    )


@router.get(
    "/v1/models/status",
    response_model=ModelStatusList,
    tags=["models"],
    summary="Each model's queue and live workers",
    responses={k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 503)},
    dependencies=STRICT_QUERY,
)
async def models_status(request: Request, _tenant: TenantDep) -> ModelStatusList:
    """Per registered model: chunks waiting, items not finished, and the live workers with
    their host, device, dtype, items/s and last heartbeat (no tenant's data: any key may
    read it)."""
    state = request.app.state
    load: ModelLoad = await run_in_threadpool(state.model_load.read)
    if load.backlogs is None:
        raise ServiceUnavailable("the database is unavailable")
    if load.workers is None:
        raise ServiceUnavailable("Redis is unavailable")
    out = []
    for spec in state.registry.values():
        backlog = load.backlogs.get(spec.name)
        out.append(
            ModelStatusOut(
                model=spec.name,
                task=spec.task,
                queue_depth=backlog.queue_depth if backlog else 0,
                pending_items=backlog.pending_items if backlog else 0,
                workers=[_worker_out(w, spec.name) for w in load.workers.get(spec.name, [])],
            )
        )
    return ModelStatusList(data=out)
