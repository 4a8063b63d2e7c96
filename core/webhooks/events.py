"""Webhook events: their names, their bodies, and when a failed delivery is tried again."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from core import states

# A job's end is `job.<status>`; a batch's is OpenAI's `batch.<status>`.
ENDING_STATUSES = (states.COMPLETED, states.FAILED, states.CANCELLED, states.EXPIRED)


def event_type(*, status: str, is_batch: bool) -> str:
    """The event a job (or batch) that ended in `status` announces."""
    if status not in ENDING_STATUSES:
        raise ValueError(f"{status!r} does not end a job")
    return f"{'batch' if is_batch else 'job'}.{status}"


def event_body(
    *,
    msg_id: str,
    kind: str,
    job_id: str,
    is_batch: bool,
    status: str,
    counts: dict[str, int],
    at: float,
) -> bytes:
    """The JSON every attempt of the event sends: Standard Webhooks' {type, timestamp,
    data}, plus OpenAI's event fields (id, object, created_at), so OpenAI's client can
    unwrap a batch's event."""
    body: dict[str, Any] = {
        "id": msg_id,
        "object": "event",
        "type": kind,
        "created_at": int(at),
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "id": job_id,
            "object": "batch" if is_batch else "job",
            "status": status,
            "counts": counts,
        },
    }
    return orjson.dumps(body)


def retry_at(
    *,
    attempt: int,
    first_at: float,
    now: float,
    base: float,
    cap: float,
    window: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """When to try again after failed attempt number `attempt` (1 the first): about
    base x 2^(attempt-1) seconds later, at most cap, jittered into its upper half so that
    receivers that failed together are not retried together; None once that falls past
    window seconds after the event (give up)."""
    delay = min(cap, base * 2.0 ** min(attempt - 1, 60))
    at = now + delay * (0.5 + 0.5 * rand())
    return at if at <= first_at + window else None
