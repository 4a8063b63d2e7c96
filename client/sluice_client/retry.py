"""When to try a request again, and how long to wait first: 429 and 503 answers (after the
server's `Retry-After`), and broken connections where a second attempt is harmless."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 503})
# Transport errors raised before the request could have reached the server: any request may
# be sent again. Any other transport error may have struck after the server acted on it.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and the longest wait the client accepts before one."""

    max_retries: int = 3
    max_wait: float = 60.0
    backoff: float = 0.5

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to sleep before retry number `retry` (from 1), or None to give up: past
        max_retries, or when the server asks for a longer wait than max_wait."""
        if retry > self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        wait = min(self.max_wait, self.backoff * 2 ** (retry - 1))
        return wait * (0.5 + random.random() / 2)  # jitter: clients do not retry in step


def may_resend(exc: httpx.TransportError, *, idempotent: bool) -> bool:
    """Whether a request that failed with this transport error may be sent again."""
    return idempotent or isinstance(exc, NOT_SENT_ERRORS)
