"""What each live worker tells the API about itself: a Redis hash per worker (host, and per
model its device, dtype and recent items/s), written with every heartbeat and expiring with
it. Workers write it, the API's model status reads it."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from core.constants import WORKER_TTL_SECONDS, worker_info_key, workers_key

log = logging.getLogger(__name__)
# A model's status lists at most this many workers (the hashes are read in one round trip).
MAX_WORKERS_LISTED = 1000


@dataclass(frozen=True)
class ModelServing:
    """How one worker runs one model."""

    task: str
    device: str
    dtype: str
    items_per_second: float


@dataclass(frozen=True)
class WorkerInfo:
    """One worker process, as its last heartbeat described it."""

    name: str
    host: str | None
    last_heartbeat: float
    models: dict[str, ModelServing]


def write_worker_info(
    r: Redis, *, prefix: str, info: WorkerInfo, ttl: float = WORKER_TTL_SECONDS
) -> None:
    """Store a worker's description until `ttl` seconds after this heartbeat."""
    models = {name: asdict(serving) for name, serving in info.models.items()}
    key = worker_info_key(prefix, info.name)
    pipe = r.pipeline()
    pipe.delete(key)  # a field dropped since the last heartbeat must not linger
    pipe.hset(
        key,
        mapping={
            "name": info.name,
            "host": info.host or "",
            "devices": ",".join(sorted({m.device for m in info.models.values()})),
            "dtypes": ",".join(sorted({m.dtype for m in info.models.values()})),
            "items_per_second": round(sum(m.items_per_second for m in info.models.values()), 3),
            "models": json.dumps(models, separators=(",", ":")),
            "last_heartbeat": info.last_heartbeat,
        },
    )
    pipe.pexpire(key, int(ttl * 1000))
    pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(name: str, fields: dict[Any, Any], score: float) -> WorkerInfo:
    """A worker from its hash; one whose hash is gone (or unreadable) keeps its name and
    heartbeat time only."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    models: dict[str, ModelServing] = {}
    try:
        for model, serving in json.loads(text.get("models") or "{}").items():
            models[model] = ModelServing(**serving)
    except (ValueError, TypeError):
        log.warning("worker %s has an unreadable description in Redis", name)
    last = text.get("last_heartbeat")
    return WorkerInfo(
        name=name,
        host=text.get("host") or None,
        last_heartbeat=float(last) if last else score,
        models=models,
    )


def live_workers_of(r: Redis, *, prefix: str, model: str, now: float) -> list[WorkerInfo]:
    """The workers that heartbeat for a model within the last WORKER_TTL_SECONDS, each as
    it describes itself, by name."""
    found: list[tuple[Any, float]] = r.zrangebyscore(  # type: ignore[assignment]
        workers_key(prefix, model),
        now - WORKER_TTL_SECONDS,
        "+inf",
        start=0,
        num=MAX_WORKERS_LISTED,
        withscores=True,
    )
    if not found:
        return []
    pipe = r.pipeline()
    for member, _ in found:
        pipe.hgetall(worker_info_key(prefix, _text(member)))
    hashes = pipe.execute()
    workers = [
        _parse(_text(member), fields, float(score))
        for (member, score), fields in zip(found, hashes, strict=True)
    ]
    return sorted(workers, key=lambda w: w.name)
