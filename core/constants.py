"""Queue names, task names and Redis key names, in one place."""

RUN_CHUNK_TASK = "sluice.run_chunk"
INGEST_TASK = "sluice.ingest"
FINALIZE_TASK = "sluice.finalize"
MODEL_QUEUE_PREFIX = "sluice.model."
# A chunk message's header: when it was published (the worker measures queue wait by it).
QUEUED_AT_HEADER = "sluice_queued_at"


def model_queue(model: str) -> str:
    """The Celery queue that carries chunks of one model."""
    return f"{MODEL_QUEUE_PREFIX}{model}"


def nudge_key(prefix: str, model: str) -> str:
    """Redis list a dispatcher blocks on; pushed when new work for a model appears."""
    return f"{prefix}nudge:{model}"


def workers_key(prefix: str, model: str) -> str:
    """Redis sorted set of live workers serving a model, scored by last heartbeat."""
    return f"{prefix}workers:{model}"


def worker_info_key(prefix: str, name: str) -> str:
    """Redis hash of one worker's host, devices, models and throughput (expires with its
    heartbeat)."""
    return f"{prefix}worker:{name}"


def lock_key(prefix: str, name: str) -> str:
    """Redis key of a short advisory lock (sweep)."""
    return f"{prefix}lock:{name}"


def rate_key(prefix: str, tenant_id: str, window: int, what: str = "rate") -> str:
    """Redis counter of one tenant's job submissions (or, by `what`, uploads) in one minute
    window."""
    return f"{prefix}{what}:{tenant_id}:{window}"


WORKER_TTL_SECONDS = 15.0
