"""Readiness, cheaply: the schema is checked once when the API starts (it refuses to start
on an outdated one), so a probe only pings the database and Redis and counts each model's
live workers, in one Redis round trip. The answer is kept for MAX_AGE_SECONDS per process
and computed by one caller at a time, however often the probe is hit; it logs nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from core.constants import WORKER_TTL_SECONDS, workers_key
from core.db import ping

MAX_AGE_SECONDS = 1.0
# Schema states the answer reports.
SCHEMA_CHECKED = "ok"
SCHEMA_UNCHECKED = "unchecked"


@dataclass(frozen=True)
class ReadinessReport:
    """One probe: 200 when the database and Redis answer (models without a live worker are
    listed, not a failure: a worker may start later)."""

    read_at: float
    body: dict[str, Any]

    @property
    def ready(self) -> bool:
        """Whether the database and Redis both answered."""
        return self.body["status"] == "ready"


class Readiness:
    """The readiness probe of one API process."""

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
        self.schema = SCHEMA_UNCHECKED  # set by the app's start-up once it has checked
        self._lock = threading.Lock()
        self._last: ReadinessReport | None = None

    def report(self) -> ReadinessReport:
        """The latest probe, at most max_age old (concurrent callers share one)."""
        with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last.read_at > self.max_age:
                self._last = ReadinessReport(read_at=now, body=self._probe())
            return self._last

    def _probe(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            ping(self.database_url)
            checks["database"] = "ok"
        except Exception as exc:  # any failure is "not ready", never a 500
            checks["database"] = f"error: {type(exc).__name__}"
        idle: list[str] | None = None
        try:
            idle = self._models_without_workers()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = checks["database"] == "ok" and checks["redis"] == "ok"
        return {
            "status": "ready" if ok else "unavailable",
            **checks,
            "schema": self.schema,
            # None when Redis could not say.
            "models_without_workers": idle,
        }

    def _models_without_workers(self) -> list[str]:
        """Registered models no worker has heartbeated for lately (one pipeline)."""
        since = time.time() - WORKER_TTL_SECONDS
        pipe = self.redis.pipeline(transaction=False)
        for model in self.models:
            pipe.zcount(workers_key(self.prefix, model), since, "+inf")
        if not self.models:
            self.redis.ping()
            return []
        counts = pipe.execute()
        return [m for m, n in zip(self.models, counts, strict=True) if not n]
