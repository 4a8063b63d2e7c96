"""The per-tenant submission rate, counted in Redis one minute window at a time."""

from __future__ import annotations

import logging
import time

from redis import Redis

from core.constants import rate_key
from core.errors import QuotaExceeded

log = logging.getLogger(__name__)


def check_rate(r: Redis, *, prefix: str, tenant_id: str, per_minute: int) -> None:
    """Count one submission for the tenant; raise QuotaExceeded over the per-minute limit.

    Fails open when Redis is unreachable: the database, not Redis, decides what runs.
    """
    now = time.time()
    window = int(now // 60)
    key = rate_key(prefix, tenant_id, window)
    try:
        pipe = r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
    except Exception as exc:
        log.warning("rate limit not checked, Redis unreachable: %s", exc)
        return
    if count > per_minute:
        raise QuotaExceeded(
            f"more than {per_minute} job submissions per minute",
            retry_after=max(1, int((window + 1) * 60 - now) + 1),
        )
