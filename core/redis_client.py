"""The process's Redis client (not the broker connection Celery keeps for itself)."""

from __future__ import annotations

from functools import lru_cache

import redis

from core.config import settings


@lru_cache(maxsize=4)
def get_redis(url: str | None = None) -> redis.Redis:
    """A Redis client with short timeouts, so an outage fails fast instead of hanging."""
    return redis.Redis.from_url(
        url or settings.redis_url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
    )
