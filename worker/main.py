"""Starting a worker: pin, check the schema, load models once, then consume."""

from __future__ import annotations

import gc
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from typing import Any

from worker.pinning import pin_to_gpu

log = logging.getLogger(__name__)


def worker_banner(
    *,
    name: str,
    runners: Mapping[str, Any],
    queues: list[str],
    threads: int,
    metrics_port: int | None,
    as_root: bool,
) -> str:
    """The one line a worker logs when it starts consuming: what it serves, where and how."""
    models = "; ".join(
        f"{model} ({runner.task} on {runner.device}, {str(runner.dtype).removeprefix('torch.')})"
        for model, runner in runners.items()
    )
    metrics = f"metrics on :{metrics_port}" if metrics_port is not None else "no metrics port"
    root = "; running as root" if as_root else ""
    return (
        f"sluice worker {name} ready: {models}; queues {', '.join(queues)}; "
        f"{threads} torch threads; {metrics}{root}"
    )


def quiet_libraries() -> None:
    """Keep the worker's log to what an operator reads: Celery's warnings and errors but not
    its banner, connection and per-task INFO lines (the start-up banner says what they
    did); no weight-loading progress bars."""
    from celery.exceptions import SecurityWarning
    from transformers.utils import logging as transformers_logging

    logging.getLogger("celery").setLevel(logging.WARNING)
    transformers_logging.disable_progress_bar()
    # Celery warns about running as root because a root worker that accepts pickle runs
    # whatever the broker hands it; sluice's accept only JSON (core/celery_app.py), and
    # Celery refuses to start outright if pickle is ever accepted. The banner notes root.
    warnings.filterwarnings("ignore", category=SecurityWarning)


def start_worker(
    *,
    gpu: int | None,
    models: list[str] | None,
    threads: int | None = None,
    loglevel: str = "INFO",
    metrics_port: int | None = None,
) -> None:
    """Run a worker in this process until it is stopped (blocking); with metrics_port it
    serves its Prometheus metrics there."""
    pin_to_gpu(gpu)  # before anything below imports torch

    import torch
    from celery.signals import worker_ready, worker_shutting_down

    from core.celery_app import celery_app
    from core.config import settings
    from core.constants import model_queue
    from core.contracts.spec import load_registry
    from core.db import check_schema
    from core.redis_client import get_redis
    from models.observer import attach_observer
    from models.registry import load_runners
    from worker.context import WorkerContext, set_context
    from worker.housekeeper import Housekeeper
    from worker.metrics import WorkerMetrics
    from worker.recorder import Recorder

    if gpu is not None and not torch.cuda.is_available():
        raise SystemExit(
            f"--gpu {gpu}: no CUDA device is visible to this process "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}); "
            "inside a container the reserved GPU is always --gpu 0"
        )
    if threads:
        torch.set_num_threads(threads)
    quiet_libraries()
    check_schema()
    registry = load_registry(settings.models_file)
    names = models or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; registered: {sorted(registry)}")
    runners = load_runners((registry[n] for n in names), warm=settings.warm_up_models)
    # torch, transformers and the weights leave about a million long-lived objects; frozen,
    # the collector stops rescanning them on every full collection during inference
    gc.collect()
    gc.freeze()
    gpu_tag = f"gpu{gpu}" if gpu is not None else "cpu"
    name = f"{socket.gethostname()}:{os.getpid()}:{gpu_tag}"
    # After the warm-up, so that its batches are not counted as work.
    metrics = WorkerMetrics().with_process_metrics()
    metrics.describe(socket.gethostname(), runners)
    for model, runner in runners.items():
        attach_observer(runner, metrics.observer_for(model))
    if metrics_port is not None:
        metrics.serve(settings.worker_metrics_host, metrics_port)
    ctx = WorkerContext(
        cfg=settings,
        app=celery_app,
        redis=get_redis(),
        name=name,
        runners=runners,
        recorder=Recorder(),
        pack_threads=min(4, (os.cpu_count() or 1) // 2) if torch.cuda.is_available() else 0,
        metrics=metrics,
    )
    set_context(ctx)
    queues = [model_queue(n) for n in names]
    import worker.tasks  # noqa: F401 - registers the task on celery_app

    @worker_ready.connect(weak=False)
    def _start_housekeeping(**_: object) -> None:
        # Only now does the worker consume, so only now may dispatchers count it as live.
        Housekeeper(ctx).start()
        log.info(
            "%s",
            worker_banner(
                name=name,
                runners=runners,
                queues=queues,
                threads=torch.get_num_threads(),
                metrics_port=metrics_port,
                as_root=hasattr(os, "geteuid") and os.geteuid() == 0,
            ),
        )

    @worker_shutting_down.connect(weak=False)
    def _stop_running_chunk(**_: object) -> None:
        # SIGTERM: the running chunk stops at its next micro-batch and goes back to pending
        # without costing an attempt, so a deploy never burns a chunk's retries.
        ctx.stopping.set()

    try:
        celery_app.worker_main(
            [
                "--quiet",  # no banner: the worker logs its own line once it is ready
                "worker",
                "--pool=solo",
                "--concurrency=1",
                f"--loglevel={loglevel}",
                "-n",
                f"sluice-{gpu_tag}-{os.getpid()}@{socket.gethostname()}",
                "-Q",
                ",".join(queues),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        ctx.stopping.set()
        # the last chunk's results may still be on their way to the database
        if ctx.recorder is not None and not ctx.recorder.drain(settings.lease_seconds):
            log.warning("results of the last chunk were not recorded; its lease will lapse")
