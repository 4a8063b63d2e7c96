"""A worker's Prometheus metrics: one registry per worker process, served on its own port
(`--metrics-port`), filled as chunks run and are recorded."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.process_collector import ProcessCollector

from models.observer import RunObserver
from models.results import ItemResult

log = logging.getLogger(__name__)

CHUNK_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)
QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
BATCH_SIZE_BUCKETS = tuple(float(2**k) for k in range(13))  # 1 .. 4096 items
EFFICIENCY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)


def model_histogram(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    buckets: tuple[float, ...],
    *more_labels: str,
) -> Histogram:
    """A `sluice_` histogram in the worker's registry, labelled by model (then by
    `more_labels`)."""
    if not name.startswith("sluice_"):
        raise ValueError(f"worker metric {name!r} lacks the sluice_ prefix")
    labels = ["model", *more_labels]
    return Histogram(name, documentation, labels, buckets=buckets, registry=registry)


class ModelObserver(RunObserver):
    """A runner's micro-batches and back-offs, as metrics of its model."""

    def __init__(self, metrics: WorkerMetrics, model: str) -> None:
        self.metrics, self.model = metrics, model
        self.real_units = self.padded_units = 0  # running sums, for per-chunk efficiency

    def micro_batch(self, *, items: int, real_units: int, padded_units: int) -> None:
        m = self.metrics
        self.real_units += real_units
        self.padded_units += padded_units
        m.micro_batch_size.labels(self.model).observe(items)
        if padded_units > 0:
            m.padding_efficiency.labels(self.model).observe(real_units / padded_units)
        m.batch_tokens.labels(self.model, "real").inc(real_units)
        m.batch_tokens.labels(self.model, "padded").inc(padded_units)

    def oom_backoff(self) -> None:
        self.metrics.oom_backoffs.labels(self.model).inc()


class WorkerMetrics:
    """Every metric a worker exposes (each worker context has its own registry, so tests
    that build several see only their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.items = Counter(
            "sluice_items",
            "Items whose results a worker recorded, by outcome",
            ["model", "task", "status"],
            registry=r,
        )
        self.items_failed = Counter(
            "sluice_items_failed",
            "Failed items by error code",
            ["model", "code"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "sluice_prompt_tokens", "Input tokens of recorded items", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "sluice_completion_tokens",
            "Generated tokens of recorded items",
            ["model"],
            registry=r,
        )
        self.chunk_seconds = model_histogram(
            r,
            "sluice_chunk_seconds",
            "Model compute time of a chunk",
            CHUNK_SECONDS_BUCKETS,
            "task",
        )
        self.queue_wait = model_histogram(
            r,
            "sluice_queue_wait_seconds",
            "Time from a chunk's message being published to the chunk starting",
            QUEUE_WAIT_BUCKETS,
        )
        self.micro_batch_size = model_histogram(
            r, "sluice_micro_batch_size", "Items per micro-batch", BATCH_SIZE_BUCKETS
        )
        self.padding_efficiency = model_histogram(
            r,
            "sluice_micro_batch_padding_efficiency",
            "Real over padded tokens of a micro-batch (1 = no padding)",
            EFFICIENCY_BUCKETS,
        )
        self.batch_tokens = Counter(
            "sluice_micro_batch_tokens",
            "Tokens (images for image models) in micro-batches: real, and padded as computed",
            ["model", "kind"],
            registry=r,
        )
        self.oom_backoffs = Counter(
            "sluice_oom_backoffs",
            "Out-of-memory errors that lowered a model's batch budget",
            ["model"],
            registry=r,
        )
        self.lease_losses = Counter(
            "sluice_lease_losses",
            "Chunks whose lease this worker lost before recording them",
            ["model"],
            registry=r,
        )
        self.info = Gauge(
            "sluice_worker_info",
            "This worker: always 1, with its host, device and dtype per model",
            ["host", "device", "dtype", "model"],
            registry=r,
        )
        self.last_chunk_padding = Gauge(
            "sluice_padding_efficiency",
            "Real over padded tokens, over the micro-batches of the last chunk",
            ["model"],
            registry=r,
        )
        self._observers: dict[str, ModelObserver] = {}
        self._units_at_chunk_start: dict[str, tuple[int, int]] = {}

    def describe(self, host: str, runners: Mapping[str, Any]) -> None:
        """Set the info series and start every model's counters at zero, so a rate or an
        alert has a series before the first chunk (or failure) happens."""
        for model, runner in runners.items():
            self.info.labels(
                host, str(runner.device), str(runner.dtype).removeprefix("torch."), model
            ).set(1)
            self.items.labels(model, runner.task, "completed")
            self.items.labels(model, runner.task, "failed")
            for counter in (self.prompt_tokens, self.completion_tokens):
                counter.labels(model)
            for counter in (self.oom_backoffs, self.lease_losses):
                counter.labels(model)
            self.batch_tokens.labels(model, "real")
            self.batch_tokens.labels(model, "padded")

    def observer_for(self, model: str) -> ModelObserver:
        """The observer a model's runner reports to (one per model)."""
        if model not in self._observers:
            self._observers[model] = ModelObserver(self, model)
        return self._observers[model]

    def with_process_metrics(self) -> WorkerMetrics:
        """Add the process's CPU, memory and file descriptor metrics (a real worker)."""
        ProcessCollector(registry=self.registry)
        return self

    def chunk_started(self, model: str, queued_at: float | None, now: float) -> None:
        """A chunk began: its wait in the queue, when its message said when it was sent."""
        if queued_at is not None:
            # Clocks of the dispatching and this host may differ a little: never negative.
            self.queue_wait.labels(model).observe(max(0.0, now - queued_at))
        self._units_at_chunk_start[model] = self._units(model)

    def chunk_computed(self, model: str, task: str, seconds: float) -> None:
        """A chunk's model compute ended (whether or not its results are then recorded)."""
        self.chunk_seconds.labels(model, task).observe(seconds)
        real0, padded0 = self._units_at_chunk_start.pop(model, (0, 0))
        real, padded = self._units(model)
        if padded > padded0:
            self.last_chunk_padding.labels(model).set((real - real0) / (padded - padded0))

    def chunk_recorded(self, model: str, task: str, results: Iterable[ItemResult]) -> None:
        """Count a chunk whose results were recorded: items by outcome, failures by code,
        tokens."""
        done = failed = prompt = completion = 0
        codes: Tally[str] = Tally()
        for res in results:
            if res.ok:
                done += 1
            else:
                failed += 1
                codes[res.error_code or "error"] += 1
            if res.usage:
                prompt += res.usage.get("prompt_tokens", 0)
                completion += res.usage.get("completion_tokens", 0)
        self.items.labels(model, task, "completed").inc(done)
        self.items.labels(model, task, "failed").inc(failed)
        for code, n in codes.items():
            self.items_failed.labels(model, code).inc(n)
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)

    def lease_lost(self, model: str) -> None:
        """A chunk's lease was lost (a sweep or another worker took it over)."""
        self.lease_losses.labels(model).inc()

    def serve(self, host: str, port: int) -> None:
        """Answer GET /metrics on host:port from a daemon thread; SystemExit if the port is
        taken (two workers on one port would each hide the other)."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise SystemExit(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                "give each worker on a host its own port"
            ) from exc
        log.info("metrics on http://%s:%d/metrics", host, port)

    def _units(self, model: str) -> tuple[int, int]:
        observer = self._observers.get(model)
        return (observer.real_units, observer.padded_units) if observer else (0, 0)
