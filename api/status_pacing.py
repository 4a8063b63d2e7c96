"""Status reads paced per tenant, so that clients polling back to back wait their turn
instead of taking the CPU the workers need.

Polling clients are a closed loop: each asks again as soon as it is answered, so however
cheap a status answer is, they take all the CPU they are given. On a host shared with a
worker that CPU comes out of the job being watched (200 back-to-back pollers took 0.87 of
a 2-core machine and left the job 0.39x of its speed). So each tenant's status reads are
paced to a rate per API process: a read past the tenant's burst waits, asleep and costing
nothing, until its turn; one whose turn is further off than a bound is refused with 429
and a Retry-After. A client that polls at a sane rate never waits.

The pacing is the generic cell rate algorithm (GCRA): per tenant one number, the time the
next read is due; no timers, no queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class StatusPacer:
    """Per tenant: reads at up to per_second, bursts of up to burst at once, and at most
    max_wait seconds of waiting for a turn."""

    # Tenants whose due time has passed are forgotten once this many are remembered.
    PRUNE_AT = 10_000

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spacing = 1.0 / per_second if per_second > 0 else 0.0  # 0: not paced
        self._tolerance = self._spacing * max(burst - 1, 0)
        self._max_wait = max_wait
        self._clock = clock
        self._due: dict[str, float] = {}  # tenant -> when its next read is due (GCRA's TAT)

    def turn(self, tenant_id: str) -> float | None:
        """Seconds this tenant's read waits for its turn (0.0: none), or None when the turn
        is more than max_wait away (refuse it; its place is not taken)."""
        if not self._spacing:
            return 0.0
        now = self._clock()
        due = max(self._due.get(tenant_id, now), now)
        wait = due - now - self._tolerance
        if wait > self._max_wait:
            return None
        if len(self._due) >= self.PRUNE_AT and tenant_id not in self._due:
            self._due = {t: d for t, d in self._due.items() if d > now}
        self._due[tenant_id] = due + self._spacing
        return wait if wait > 1e-9 else 0.0  # below: float rounding of a burst's last

    def retry_after(self, tenant_id: str) -> int:
        """Whole seconds until a refused tenant's reads are taken again."""
        backlog = self._due.get(tenant_id, 0.0) - self._clock() - self._tolerance
        return max(1, int(backlog - self._max_wait) + 1)
