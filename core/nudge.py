"""The Redis nudge that wakes a model's dispatchers when new work appears."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError

from core.constants import nudge_key

log = logging.getLogger(__name__)


def nudge_dispatch(r: Redis, *, prefix: str, model: str) -> bool:
    """Wake a dispatcher of the model now; False where Redis is unreachable (the next
    dispatch poll, a second later, finds the work anyway)."""
    key = nudge_key(prefix, model)
    try:
        pipe = r.pipeline()
        pipe.rpush(key, 1)
        pipe.ltrim(key, -8, -1)  # a burst of submissions leaves at most 8 wake-ups
        pipe.expire(key, 60)
        pipe.execute()
    except RedisError as exc:
        log.info("dispatch nudge for %s not sent (%s)", model, exc)
        return False
    return True
