"""The API process's own Prometheus metrics (request durations, cache lookups, live
processes) and the exposition of a scrape. Under `sluice api --workers N` every process
writes its values to files in PROMETHEUS_MULTIPROC_DIR (set up by the CLI before the
processes start), and whichever process answers a scrape sums them all."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def multiprocess_dir() -> str | None:
    """The directory the API processes share their values through, if several run."""
    return os.environ.get(MULTIPROC_ENV) or None


API_METRICS = CollectorRegistry()
HTTP_DURATION = Histogram(
    "sluice_http_request_duration_seconds",
    "Time to answer an HTTP request (streams and long-polls: until their last byte), by "
    "route template and status",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
    registry=API_METRICS,
)
CACHE_LOOKUPS = Counter(
    "sluice_cache_lookups",
    "Lookups in the API's per-process caches (job_status, api_key), by result (hit, miss)",
    ["cache", "result"],
    registry=API_METRICS,
)
API_PROCESSES = Gauge(
    "sluice_api_processes",
    "API processes running (summed over `sluice api --workers N`)",
    registry=API_METRICS,
    multiprocess_mode="livesum",
)
if multiprocess_dir() is None:
    # Per process only: under several processes a scrape would show one of them at random.
    ProcessCollector(registry=API_METRICS)


def cache_lookup_recorder(cache: str) -> Callable[[bool], None]:
    """What a cache calls on each lookup (hit or not), counted under its name."""
    hit, miss = CACHE_LOOKUPS.labels(cache, "hit"), CACHE_LOOKUPS.labels(cache, "miss")

    def record(found: bool) -> None:
        (hit if found else miss).inc()

    return record


def process_started() -> None:
    """Count this process among the live ones."""
    API_PROCESSES.set(1)


def process_stopping() -> None:
    """Leave the live count (a killed process's share stays until the directory is
    cleaned at the next start)."""
    API_PROCESSES.set(0)
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())


class _Collectors:
    """Several collectors exposed as one registry."""

    def __init__(self, sources: Iterable[Collector]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def exposition(*extra: Collector) -> bytes:
    """The text of a scrape: this process's metrics (every process's, summed, in
    multiprocess mode) and the extra collectors'."""
    path = multiprocess_dir()
    own: Collector = (
        multiprocess.MultiProcessCollector(None, path=path) if path is not None else API_METRICS
    )
    return generate_latest(_Collectors([own, *extra]))  # type: ignore[arg-type]
