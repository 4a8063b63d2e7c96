"""The load on each model, read from the database and Redis at most every MAX_AGE seconds
per process, however many scrapes and status requests ask: jobs by status, chunks and items
waiting, live workers. /metrics exposes it as gauges, /v1/models/status as JSON."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis

from core import states
from core.db import read_session
from core.store.backlog import ModelBacklog, job_counts, model_backlogs
from core.worker_info import WorkerInfo, live_workers_of

log = logging.getLogger(__name__)
MAX_AGE_SECONDS = 1.5


@dataclass(frozen=True)
class ModelLoad:
    """One reading; a source that could not be read is None."""

    read_at: float
    jobs: dict[tuple[str, str], int] | None
    backlogs: dict[str, ModelBacklog] | None
    workers: dict[str, list[WorkerInfo]] | None


class ModelLoadReader:
    """Reads the load of the registered models, one reader at a time, and keeps the
    reading for MAX_AGE_SECONDS: concurrent callers wait for the reading in progress."""

    def __init__(
        self,
        *,
        database_url: str,
        redis: Redis,
        prefix: str,
        models: Sequence[str],
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self.database_url, self.redis, self.prefix = database_url, redis, prefix
        self.models, self.max_age = list(models), max_age
        self._lock = threading.Lock()
        self._last: ModelLoad | None = None

    def read(self) -> ModelLoad:
        """The current load (at most max_age old)."""
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last.read_at > self.max_age:
                self._last = self._read(now)
            return self._last

    def _read(self, now: float) -> ModelLoad:
        jobs: dict[tuple[str, str], int] | None = None
        backlogs: dict[str, ModelBacklog] | None = None
        workers: dict[str, list[WorkerInfo]] | None = None
        try:
            with read_session(self.database_url) as session:
                jobs = job_counts(session=session)
                backlogs = model_backlogs(session=session)
        except Exception as exc:  # an outage must not break the scrape of everything else
            log.warning("model load: database unreadable (%s)", type(exc).__name__)
        try:
            wall = time.time()
            workers = {
                m: live_workers_of(self.redis, prefix=self.prefix, model=m, now=wall)
                for m in self.models
            }
        except Exception as exc:
            log.warning("model load: Redis unreadable (%s)", type(exc).__name__)
        return ModelLoad(read_at=now, jobs=jobs, backlogs=backlogs, workers=workers)


class ModelLoadCollector:
    """The reading as Prometheus gauges, computed when scraped."""

    def __init__(self, reader: ModelLoadReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        load = self.reader.read()
        up = GaugeMetricFamily(
            "sluice_metrics_source_up",
            "Whether the last reading of a source (database, redis) for these gauges worked",
            labels=["source"],
        )
        up.add_metric(["database"], float(load.backlogs is not None))
        up.add_metric(["redis"], float(load.workers is not None))
        yield up
        if load.jobs is not None:
            yield self._jobs(load.jobs)
        if load.backlogs is not None:
            yield from self._backlogs(load.backlogs)
        if load.workers is not None:
            live = GaugeMetricFamily(
                "sluice_workers", "Workers that heartbeat for a model", labels=["model"]
            )
            for model, found in load.workers.items():
                live.add_metric([model], len(found))
            yield live

    def _jobs(self, counts: dict[tuple[str, str], int]) -> Metric:
        jobs = GaugeMetricFamily(
            "sluice_jobs", "Jobs in the database by model and status", labels=["model", "status"]
        )
        # Every registered model in every status, so that a series exists at zero.
        keys = {(m, s) for m in self.reader.models for s in states.JOB_STATUSES} | set(counts)
        for model, status in sorted(keys):
            jobs.add_metric([model, status], counts.get((model, status), 0))
        return jobs

    def _backlogs(self, backlogs: dict[str, ModelBacklog]) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "sluice_queue_depth",
            "Chunks waiting to start (pending, or queued in the broker)",
            labels=["model"],
        )
        pending = GaugeMetricFamily(
            "sluice_pending_items",
            "Items not finished: in chunks pending, queued or running",
            labels=["model"],
        )
        chunks = GaugeMetricFamily(
            "sluice_chunks", "Unfinished chunks by model and status", labels=["model", "status"]
        )
        for model in sorted(set(self.reader.models) | set(backlogs)):
            backlog = backlogs.get(model, ModelBacklog())
            depth.add_metric([model], backlog.queue_depth)
            pending.add_metric([model], backlog.pending_items)
            for status in (states.C_PENDING, states.C_QUEUED, states.C_RUNNING):
                chunks.add_metric([model, status], backlog.chunks.get(status, 0))
        yield from (depth, pending, chunks)
