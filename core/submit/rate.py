"""Per-tenant rates (job submissions, uploads), counted in Redis one minute window at a time."""

from __future__ import annotations

import logging
import time

from redis import Redis, RedisError

from core.constants import rate_key
from core.errors import QuotaExceeded

log = logging.getLogger(__name__)
# The Redis key part of each rate's counters (submissions keep the name they always had).
RATE_KEYS = {"submissions_per_minute": "rate", "uploads_per_minute": "uploads"}


def check_rate(
    r: Redis,
    *,
    prefix: str,
    tenant_id: str,
    per_minute: int,
    quota: str = "submissions_per_minute",
) -> None:
    """Count one submission (or upload, by `quota`) for the tenant; QuotaExceeded
    (quota_exceeded) over the per-minute limit, with Retry-After at the next minute.

    Fails open when Redis is unreachable: the database, not Redis, decides what runs.
    """
    now = time.time()
    window = int(now // 60)
    key = rate_key(prefix, tenant_id, window, RATE_KEYS[quota])
    try:
        pipe = r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
    except Exception as exc:
        log.warning("rate limit not checked, Redis unreachable: %s", exc)
        return
    if count > per_minute:
        what = "job submissions" if quota == "submissions_per_minute" else "uploads"
        raise QuotaExceeded(
            f"more than {per_minute} {what} per minute (quota {quota})",
            code="quota_exceeded",
            retry_after=max(1, int((window + 1) * 60 - now) + 1),
            details={"quota": quota, "limit": per_minute, "current": count - 1},
        )


def current_rate(r: Redis, *, prefix: str, tenant_id: str, quota: str) -> int | None:
    """How many the tenant has used of a per-minute quota this minute (None: Redis does not
    answer)."""
    key = rate_key(prefix, tenant_id, int(time.time() // 60), RATE_KEYS[quota])
    try:
        return int(r.get(key) or 0)  # type: ignore[arg-type]
    except RedisError:
        return None
