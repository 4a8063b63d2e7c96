"""The dispatcher: keep each model's queue shallow, filled fairly from the database."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from celery import Celery
from redis import Redis
from sqlalchemy.orm import Session

from core import states
from core.celery_app import send_chunk, send_finalize, send_ingest
from core.config import Settings
from core.constants import WORKER_TTL_SECONDS, workers_key
from core.db import read_session, write_session
from core.store.chunk_stats import recent_chunk_seconds
from core.store.dispatch import (
    dispatch_chunks,
    lock_dispatch,
    queued_count,
    requeue_undelivered,
)
from core.store.ingest import has_validating
from core.store.job_tasks import claim_job_tasks
from core.store.openai_batches import claim_finalizes, has_finalizing

log = logging.getLogger(__name__)


def live_workers(r: Redis, cfg: Settings, model: str, now: float) -> int:
    """How many workers serving a model sent a heartbeat recently."""
    return int(r.zcount(workers_key(cfg.redis_prefix, model), now - WORKER_TTL_SECONDS, "+inf"))


def target_depth(live: int, per_worker: int) -> int:
    """Messages to keep queued for a model: a couple per live worker, at least a couple."""
    return per_worker * max(1, live)


def queue_lease(configured: float, chunk_seconds: float, per_worker: int) -> float:
    """How long a queued message may wait: a message waits about per_worker chunk
    durations behind the others, so allow three times that, never less than configured."""
    return max(configured, 3.0 * per_worker * chunk_seconds)


def _hand_out(
    cfg: Settings,
    waiting: Callable[[Session], bool],
    claim: Callable[[Session], list[tuple[str, str]]],
    send: Callable[[str, str], None],
    what: str,
) -> int:
    """Lease the job-level tasks that wait and no live task holds, and publish each; a
    cheap read first, so rounds with nothing waiting open no write transaction."""
    with read_session(cfg.database_url) as session:
        if not waiting(session):
            return 0
    with write_session(cfg.database_url) as session:
        claimed = claim(session)
    for job_id, token in claimed:
        try:
            send(job_id, token)
        except Exception:  # broker down: the lease lapses and a later round sends it again
            log.exception("could not publish the %s of %s", what, job_id)
    return len(claimed)


def _job_task_lease(cfg: Settings) -> float:
    return max(cfg.ingest_lease_seconds, cfg.queue_lease_seconds)


def dispatch_ingests(*, app: Celery, cfg: Settings, model: str, now: float) -> int:
    """Hand validating jobs of a model that no live ingest holds to an ingest task."""
    return _hand_out(
        cfg,
        lambda s: has_validating(session=s, model=model),
        lambda s: claim_job_tasks(
            session=s,
            model=model,
            now=now,
            lease=_job_task_lease(cfg),
            max_attempts=cfg.max_attempts,
            status=states.VALIDATING,
        ),
        lambda job_id, token: send_ingest(app, model=model, job_id=job_id, token=token),
        "ingest",
    )


def dispatch_finalizes(*, app: Celery, cfg: Settings, queue_model: str, now: float) -> int:
    """Hand finished batches that no live finalize holds to a finalize task, on a queue of
    this worker's (writing the files needs no model, so whichever worker sees them does)."""
    return _hand_out(
        cfg,
        lambda s: has_finalizing(session=s),
        lambda s: claim_finalizes(
            session=s, now=now, lease=_job_task_lease(cfg), max_attempts=cfg.max_attempts
        ),
        lambda job_id, token: send_finalize(
            app, queue_model=queue_model, job_id=job_id, token=token
        ),
        "finalize",
    )


def dispatch_model(*, app: Celery, r: Redis, cfg: Settings, model: str) -> int:
    """Top up a model's queue to its target depth; return how many chunks were sent."""
    now = time.time()
    dispatch_ingests(app=app, cfg=cfg, model=model, now=now)
    depth = target_depth(live_workers(r, cfg, model, now), cfg.queue_depth_per_worker)
    with write_session(cfg.database_url) as session:
        lock_dispatch(session=session, model=model)  # before counting, or two overfill
        missing = depth - queued_count(session=session, model=model)
        if missing <= 0:
            return 0
        lease = queue_lease(
            cfg.queue_lease_seconds,
            recent_chunk_seconds(session=session, model=model),
            cfg.queue_depth_per_worker,
        )
        sent = dispatch_chunks(
            session=session, model=model, limit=missing, now=now, queue_lease=lease
        )
    for d in sent:
        try:
            send_chunk(app, model=model, chunk_id=d.chunk_id, token=d.token)
        except Exception:  # broker down: the chunk goes back to pending, nothing is lost
            log.exception("could not publish chunk %s; returning it to pending", d.chunk_id)
            with write_session(cfg.database_url) as session:
                requeue_undelivered(session=session, chunk_id=d.chunk_id, token=d.token)
    return len(sent)
