"""Health, readiness and the model list."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import STRICT_QUERY, TenantDep
from api.schemas import ERROR_RESPONSES, ModelList, ModelOut
from core.constants import WORKER_TTL_SECONDS, workers_key
from core.db import check_schema, ping

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="The process is up")
def healthz() -> dict[str, str]:
    """Liveness: answers while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", tags=["system"], summary="Database and Redis are reachable")
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database (at the right schema) and Redis answer, else 503."""
    checks: dict[str, str] = {}
    db = request.app.state.settings.database_url
    try:
        ping(db)
        check_schema(db)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        request.app.state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )


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
