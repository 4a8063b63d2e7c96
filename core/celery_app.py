"""The Celery app object: broker settings and routing. The API sends by task name only."""

from __future__ import annotations

import time

from celery import Celery

from core.config import Settings, settings
from core.constants import (
    FINALIZE_TASK,
    INGEST_TASK,
    QUEUED_AT_HEADER,
    RUN_CHUNK_TASK,
    model_queue,
)


def make_celery(cfg: Settings = settings) -> Celery:
    """A Celery app on the configured Redis, with every key under the deployment's prefix."""
    app = Celery("sluice", broker=cfg.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        broker_transport_options={
            "global_keyprefix": cfg.redis_prefix,
            # Chunks take seconds; a redelivered copy is harmless (the lease token says so).
            "visibility_timeout": 3600,
        },
        task_default_queue=f"{cfg.redis_prefix}default",
    )
    return app


celery_app = make_celery()


def send_chunk(app: Celery, *, model: str, chunk_id: int, token: str) -> None:
    """Publish one chunk's message on its model's queue, stamped with the time it was sent
    (a header, so workers of any version take the message)."""
    app.send_task(
        RUN_CHUNK_TASK,
        args=[chunk_id, token],
        queue=model_queue(model),
        headers={QUEUED_AT_HEADER: time.time()},
    )


def send_ingest(app: Celery, *, model: str, job_id: str, token: str) -> None:
    """Publish a job's ingest on its model's queue (a worker of that model checks it)."""
    app.send_task(INGEST_TASK, args=[job_id, token], queue=model_queue(model))


def send_finalize(app: Celery, *, queue_model: str, job_id: str, token: str) -> None:
    """Publish a batch's finalize on a queue this worker consumes (it needs no model)."""
    app.send_task(FINALIZE_TASK, args=[job_id, token], queue=model_queue(queue_model))
