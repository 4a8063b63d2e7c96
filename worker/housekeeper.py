"""A background thread per worker: heartbeats, lease extension, dispatch, the sweep, and
webhook delivery from the outbox."""

from __future__ import annotations

import logging
import threading
import time

from core.blobs import storage_named
from core.constants import lock_key, nudge_key, workers_key
from core.db import write_session
from core.store.chunk_leases import extend_lease
from core.store.message_batches import delete_expired_message_batches
from core.store.openai_batches import expire_overdue
from core.store.retention import (
    claim_expired_files,
    delete_expired_jobs,
    delete_old_audit_events,
    delete_old_usage,
)
from core.store.sweep import sweep_expired
from core.worker_info import ModelServing, WorkerInfo, write_worker_info
from worker.context import WorkerContext
from worker.dispatcher import dispatch_finalizes, dispatch_model
from worker.webhooks import WebhookSender

log = logging.getLogger(__name__)
DAY = 86400.0
HEARTBEAT_SECONDS = 5.0


def describe_worker(ctx: WorkerContext, now: float) -> WorkerInfo:
    """This worker as its heartbeat describes it: host, and per model its device, dtype and
    items/s over the last minute."""
    rates = ctx.throughput.per_second(now)
    return WorkerInfo(
        name=ctx.name,
        host=ctx.host,
        last_heartbeat=now,
        models={
            model: ModelServing(
                task=str(getattr(runner, "task", "")),
                device=str(getattr(runner, "device", "")),
                dtype=str(getattr(runner, "dtype", "")).removeprefix("torch."),
                items_per_second=round(rates.get(model, 0.0), 3),
            )
            for model, runner in ctx.runners.items()
        },
    )


class Housekeeper(threading.Thread):
    """Keeps this worker's leases alive and the queues of its models topped up."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(name="sluice-housekeeper", daemon=True)
        self.ctx = ctx
        self._next = {
            "heartbeat": 0.0,
            "extend": 0.0,
            "sweep": 0.0,
            "dispatch": 0.0,
            "webhooks": 0.0,
        }
        self.webhooks = WebhookSender(ctx.cfg, ctx.name)

    def run(self) -> None:
        """Loop until the worker stops; errors are logged and retried, never fatal."""
        while not self.ctx.stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("housekeeping failed; retrying in a second")
                self.ctx.stopping.wait(1.0)

    def _due(self, what: str, every: float, now: float) -> bool:
        if now < self._next[what]:
            return False
        self._next[what] = now + every
        return True

    def tick(self) -> None:
        """One round: each duty runs when it is due; then wait for a nudge or the next due."""
        cfg, now = self.ctx.cfg, time.time()
        if self._due("heartbeat", HEARTBEAT_SECONDS, now):
            self.heartbeat(now)
        if self._due("extend", cfg.lease_seconds / 4, now):
            self.extend_leases(now)
        if self._due("sweep", cfg.sweep_interval_seconds, now):
            self.sweep(now)
        if self._due("dispatch", cfg.dispatch_interval_seconds, now):
            self.dispatch()
        if self._due("webhooks", cfg.webhook_poll_seconds, now):
            # Claims only here; the POSTs run on the sender's threads, so a slow receiver
            # never delays heartbeats or lease extensions.
            self.webhooks.deliver_due(now)
        wait = max(0.05, min(self._next.values()) - time.time())
        keys = [nudge_key(cfg.redis_prefix, m) for m in self.ctx.runners]
        if keys and self.ctx.redis.blpop(keys, timeout=wait) is not None:
            self._next["dispatch"] = 0.0  # new work announced: dispatch now

    def heartbeat(self, now: float) -> None:
        """Tell dispatchers this worker serves its models, and the API's model status what
        it runs them on and how fast."""
        pipe = self.ctx.redis.pipeline()
        for model in self.ctx.runners:
            pipe.zadd(workers_key(self.ctx.cfg.redis_prefix, model), {self.ctx.name: now})
        pipe.execute()
        info = describe_worker(self.ctx, now)
        write_worker_info(self.ctx.redis, prefix=self.ctx.cfg.redis_prefix, info=info)

    def extend_leases(self, now: float) -> None:
        """Extend the lease of every chunk this process runs; flag the ones we lost."""
        with self.ctx.lock:
            active = list(self.ctx.active.values())
        for lease in active:
            with write_session(self.ctx.cfg.database_url) as session:
                ok = extend_lease(
                    session=session,
                    chunk_id=lease.work.chunk_id,
                    token=lease.work.token,
                    now=now,
                    lease=self.ctx.cfg.lease_seconds,
                )
            if not ok and not lease.lost:
                log.warning("lease of chunk %s lost; stopping it", lease.work.chunk_id)
                lease.lost = True
                self.ctx.metrics.lease_lost(lease.work.model)

    def sweep(self, now: float) -> None:
        """Return expired leases to pending; one worker at a time does it."""
        cfg = self.ctx.cfg
        key = lock_key(cfg.redis_prefix, "sweep")
        if not self.ctx.redis.set(
            key, self.ctx.name, nx=True, px=int(cfg.sweep_interval_seconds * 1000)
        ):
            return
        with write_session(cfg.database_url) as session:
            moved = sweep_expired(
                session=session,
                now=now,
                max_attempts=cfg.max_attempts,
                isolation_horizon=10 * cfg.lease_seconds,
            )
        if any(moved.values()):
            log.info("sweep: %s", moved)
        with write_session(cfg.database_url) as session:
            expired = expire_overdue(session=session, now=now)
        if expired:
            log.info("completion window passed: expiring %s", ", ".join(expired))
        self.retention(now)

    def retention(self, now: float) -> None:
        """Delete jobs and files past their expiry, and audit entries and usage counters
        past their retention (a batch a round)."""
        cfg = self.ctx.cfg
        with write_session(cfg.database_url) as session:
            jobs = delete_expired_jobs(session=session, now=now)
            delete_expired_message_batches(session=session, now=now)
            delete_old_audit_events(session=session, before=now - cfg.audit_retention_days * DAY)
            delete_old_usage(session=session, before=now - cfg.usage_retention_days * DAY)
        with write_session(cfg.database_url) as session:
            files = claim_expired_files(session=session, now=now)
        for file_id, storage in files:
            if storage != "db":  # database parts went with their row
                storage_named(
                    storage, database_url=cfg.database_url, files_dir=cfg.files_dir
                ).delete(file_id)
        if jobs or files:
            log.info("retention: deleted %d jobs and %d files", jobs, len(files))

    def dispatch(self) -> None:
        """Top up the queue of every model this worker serves; send finished batches'
        finalizes to one of them."""
        for model in self.ctx.runners:
            dispatch_model(app=self.ctx.app, r=self.ctx.redis, cfg=self.ctx.cfg, model=model)
        if self.ctx.runners:
            dispatch_finalizes(
                app=self.ctx.app,
                cfg=self.ctx.cfg,
                queue_model=next(iter(self.ctx.runners)),
                now=time.time(),
            )
