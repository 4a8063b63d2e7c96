"""Which models have a live worker, read from the workers' heartbeats in Redis once per
interval by one background task per API process, so that every job body can say
`waiting_for_worker` at the cost of a dict lookup: a job that has waited a few seconds
while no worker of its model heartbeats is told so, instead of an ETA that never comes.

A job body is rendered in many places (routes, the status fast path's shared rendering,
event streams, the dashboard's lists); they all go through api.views.job_out, which asks
the presence this module holds for the process (installed by the app's lifespan).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from anyio import to_thread
from redis import Redis

from core import states
from core.constants import WORKER_TTL_SECONDS, workers_key
from core.tables import Job

log = logging.getLogger(__name__)
# A reading older than this many intervals (Redis unreachable meanwhile) says nothing.
STALE_INTERVALS = 5


class WorkerPresence:
    """Live workers per model, as last read, and the grace a job gets before it is said
    to wait for one."""

    def __init__(
        self,
        *,
        redis: Redis,
        prefix: str,
        models: Sequence[str],
        grace_seconds: float,
        interval: float = 1.0,
    ) -> None:
        self.redis, self.prefix, self.models = redis, prefix, list(models)
        self.grace_seconds, self.interval = grace_seconds, interval
        self.live: dict[str, int] = {}
        self.read_at: float | None = None  # monotonic time of the last good reading

    def read(self, now: float | None = None) -> None:
        """Count each model's live workers (one round trip for all of them)."""
        wall = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        for model in self.models:
            pipe.zcount(workers_key(self.prefix, model), wall - WORKER_TTL_SECONDS, "+inf")
        counts = pipe.execute()
        self.live = {m: int(n) for m, n in zip(self.models, counts, strict=True)}
        self.read_at = time.monotonic()

    def has_worker(self, model: str) -> bool | None:
        """Whether a worker of the model heartbeats; None when that is not known (no recent
        reading, or a model this process does not list)."""
        fresh = (
            self.read_at is not None
            and time.monotonic() - self.read_at <= STALE_INTERVALS * self.interval
        )
        if not fresh or model not in self.live:
            return None
        return self.live[model] > 0

    def waiting_for_worker(self, job: Job, now: float) -> bool:
        """Whether an unfinished job has waited grace_seconds and no worker of its model is
        live (False when that is not known: a warning is never made up)."""
        if job.status in states.JOB_TERMINAL or now - job.created_at < self.grace_seconds:
            return False
        return self.has_worker(job.model) is False

    async def run(self) -> None:
        """Read every interval until cancelled (the app's lifespan runs it)."""
        while True:
            try:
                await to_thread.run_sync(self.read)
            except Exception as exc:  # Redis down: the bodies say nothing until it is back
                log.debug("reading live workers failed: %s", exc)
            await asyncio.sleep(self.interval)


_current: WorkerPresence | None = None


def install(presence: WorkerPresence) -> None:
    """Make presence the one job bodies of this process consult."""
    global _current
    _current = presence


def uninstall(presence: WorkerPresence) -> None:
    """Stop consulting presence, unless another app of the process installed its own since."""
    global _current
    if _current is presence:
        _current = None


def waiting_for_worker(job: Job, now: float) -> bool:
    """The installed presence's verdict on a job (False when none is installed)."""
    return _current is not None and _current.waiting_for_worker(job, now)
