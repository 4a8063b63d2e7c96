"""The worker process's state, filled once at start-up (arq's ctx pattern)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from redis import Redis

from core.config import Settings
from core.store.chunk_leases import ChunkWork
from worker.metrics import WorkerMetrics
from worker.recorder import Recorder
from worker.throughput import ItemRate


@dataclass
class ActiveLease:
    """A chunk this process is running, and whether its lease is still ours."""

    work: ChunkWork
    lost: bool = False


@dataclass
class WorkerContext:
    """Settings, clients and loaded runners of one worker process."""

    cfg: Settings
    app: Celery
    redis: Redis
    name: str
    runners: dict[str, Any]
    active: dict[int, ActiveLease] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    # Records finished chunks in the background (None: record before the task returns).
    recorder: Recorder | None = None
    # zstd threads for result blobs. A GPU worker's cores idle while the GPU computes, and
    # one thread encoding results is slower than an H100 embedding them; on a CPU worker
    # torch needs every core, so 0 (compress on the recording thread).
    pack_threads: int = 0
    # Prometheus metrics (a registry of this context's own) and recent items/s per model.
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    throughput: ItemRate = field(default_factory=ItemRate)
    host: str = field(default_factory=socket.gethostname)


_context: WorkerContext | None = None


def set_context(ctx: WorkerContext) -> None:
    """Install the process's context (once, at start-up)."""
    global _context
    _context = ctx


def get_context() -> WorkerContext:
    """The process's context; the worker must have started."""
    if _context is None:
        raise RuntimeError("worker context is not set: start through `sluice worker`")
    return _context
