"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.access_log import AccessLogMiddleware
from api.auth import ApiKeyMiddleware, KeyState
from api.dashboard_page import install_dashboard
from api.errors import install_error_handlers
from api.http_metrics import HttpMetricsMiddleware
from api.job_watch import job_watcher
from api.key_usage import LastUsed
from api.limits import BodyLimitMiddleware, BodyTimeoutMiddleware, LargeBodyGate
from api.metrics import cache_lookup_recorder, process_started, process_stopping
from api.model_load import ModelLoadReader
from api.offline_docs import install_docs
from api.readiness import SCHEMA_CHECKED, Readiness
from api.routes import (
    account,
    admin_audit,
    admin_keys,
    admin_tenants,
    dashboard,
    files,
    job_detail,
    job_events,
    jobs,
    message_batches,
    monitoring,
    openai_batches,
    system,
    usage,
    webhooks,
)
from api.status_fast_path import StatusFastPath
from api.status_pacing import StatusPacer
from api.stream_slots import StreamSlots
from api.ttl_cache import TTLCache
from api.upload_slots import UploadSlots
from api.worker_presence import WorkerPresence
from api.worker_presence import install as install_presence
from api.worker_presence import uninstall as uninstall_presence
from core.blobs import storage_for
from core.config import Settings, redacted_url, settings
from core.contracts.spec import ModelSpec, load_registry
from core.db import check_schema
from core.redis_client import get_redis

log = logging.getLogger(__name__)


def api_banner(cfg: Settings, registry: Mapping[str, ModelSpec]) -> str:
    """The one line an API process logs when it is ready (no secret in it)."""
    models = ", ".join(f"{name} ({spec.task})" for name, spec in registry.items()) or "none"
    return (
        f"sluice api ready (pid {os.getpid()}): models {models}; database "
        f"{redacted_url(cfg.database_url)}; redis {redacted_url(cfg.redis_url)} "
        f"(prefix {cfg.redis_prefix}); access log {'on' if cfg.access_log else 'off'}"
    )


def create_app(cfg: Settings = settings, *, check_db: bool = True) -> FastAPI:
    """Build the API; with check_db it refuses to start on an out-of-date schema."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if check_db:
            check_schema(cfg.database_url)
            # Once here, not per probe: /readyz then only pings (api/readiness.py).
            app.state.readiness.schema = SCHEMA_CHECKED
        process_started()
        presence: WorkerPresence = app.state.worker_presence
        install_presence(presence)
        reading = asyncio.create_task(presence.run(), name="worker presence")
        log.info("%s", api_banner(cfg, app.state.registry))
        try:
            yield
        finally:
            process_stopping()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            uninstall_presence(presence)
            await app.state.job_watcher.close()
            await app.state.last_used.close()

    app = FastAPI(
        title="sluice",
        version="0.1.0",
        description="Self-hosted batch inference: submit jobs, poll progress, stream results.",
        lifespan=lifespan,
        # /docs is served from packaged files (api/offline_docs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
        # Starlette's redirect echoes the Host header; api/slash_redirect.py's does not.
        redirect_slashes=False,
    )
    app.state.settings = cfg
    app.state.registry = load_registry(cfg.models_file)
    app.state.redis = get_redis(cfg.redis_url)
    app.state.key_cache = TTLCache[KeyState](
        cfg.key_cache_seconds, on_lookup=cache_lookup_recorder("api_key")
    )
    app.state.last_used = LastUsed(cfg.database_url)
    app.state.job_watcher = job_watcher(
        cfg.database_url,
        cfg.watch_interval_seconds,
        on_lookup=cache_lookup_recorder("job_status"),
    )
    app.state.status_pacer = StatusPacer(
        per_second=cfg.status_reads_per_second,
        burst=cfg.status_read_burst,
        max_wait=cfg.status_max_wait_seconds,
    )
    app.state.stream_slots = StreamSlots(
        total=cfg.max_event_streams, per_tenant=cfg.max_event_streams_per_tenant
    )
    app.state.model_load = ModelLoadReader(
        database_url=cfg.database_url,
        redis=app.state.redis,
        prefix=cfg.redis_prefix,
        models=list(app.state.registry),
    )
    app.state.worker_presence = WorkerPresence(
        redis=app.state.redis,
        prefix=cfg.redis_prefix,
        models=list(app.state.registry),
        grace_seconds=cfg.waiting_for_worker_seconds,
    )
    app.state.readiness = Readiness(
        database_url=cfg.database_url,
        redis=app.state.redis,
        prefix=cfg.redis_prefix,
        models=list(app.state.registry),
    )
    app.state.upload_slots = UploadSlots(per_tenant=cfg.max_uploads_per_tenant)
    app.state.query_names = {}  # id(route) -> the query parameters it takes (api.deps)
    app.state.storage = storage_for(
        database_url=cfg.database_url, files_dir=cfg.files_dir, part_bytes=cfg.file_part_bytes
    )
    # The last added runs first: the key is checked, then the body's declared size, then
    # a large body waits for its turn; none of them reads the body.
    app.add_middleware(
        LargeBodyGate,
        min_bytes=cfg.large_body_bytes,
        slots=cfg.large_body_concurrency,
        exempt_paths=("/v1/files",),
    )
    # Uploads get the file limit plus room for the multipart envelope; the upload itself
    # enforces the file limit exactly.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=cfg.max_body_bytes,
        upload_max_bytes=cfg.max_file_bytes + (1 << 20),
        upload_paths=("/v1/files",),
    )
    # A body that stalls is answered 408 (the head's deadline is the server protocol's:
    # api/header_timeout.py).
    app.add_middleware(BodyTimeoutMiddleware, seconds=cfg.body_timeout_seconds)
    # A plain status GET is answered here, once its key is checked (api/status_fast_path).
    app.add_middleware(StatusFastPath, state=app.state)
    app.add_middleware(ApiKeyMiddleware, state=app.state)
    app.add_middleware(HttpMetricsMiddleware)  # refusals are timed too
    if cfg.access_log:  # outermost: every request is logged, refusals included
        app.add_middleware(AccessLogMiddleware)
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(files.router)
    app.include_router(jobs.router)
    app.include_router(job_events.router)
    app.include_router(openai_batches.router)
    app.include_router(message_batches.router)
    app.include_router(monitoring.router)
    app.include_router(webhooks.router)
    app.include_router(job_detail.router)
    app.include_router(dashboard.router)
    app.include_router(admin_tenants.router)
    app.include_router(admin_keys.router)
    app.include_router(admin_audit.router)
    app.include_router(account.router)
    app.include_router(usage.router)
    install_docs(app)
    install_dashboard(app)
    return app
