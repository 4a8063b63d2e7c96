"""How many long-lived event streams this API process holds, in all and per tenant: each
is a connection, a coroutine and a place in a job's watch, so their number is bounded."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from core.errors import QuotaExceeded, ServiceUnavailable

# What a refused client is told to wait before it tries again, in seconds.
RETRY_AFTER_SECONDS = 5


class StreamSlots:
    """Counts open streams; check() refuses a new one beyond either bound."""

    def __init__(self, *, total: int, per_tenant: int) -> None:
        self.total, self.per_tenant = total, per_tenant
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._open.total()

    def check(self, tenant_id: str) -> None:
        """Raise unless a stream of this tenant may open now: 429 too_many_streams past the
        tenant's bound, 503 too_many_streams past the process's."""
        if self._open[tenant_id] >= self.per_tenant:
            raise QuotaExceeded(
                f"this key's tenant has {self.per_tenant} event streams open on this API "
                "process, its most; close one or retry later",
                code="too_many_streams",
                retry_after=RETRY_AFTER_SECONDS,
            )
        if self.open >= self.total:
            raise ServiceUnavailable(
                f"this API process holds {self.total} event streams, its most; retry later",
                code="too_many_streams",
                retry_after=RETRY_AFTER_SECONDS,
            )

    @contextlib.contextmanager
    def held(self, tenant_id: str) -> Iterator[None]:
        """Count a stream of the tenant as open for the length of the block."""
        self._open[tenant_id] += 1
        try:
            yield
        finally:
            self._open[tenant_id] -= 1
            if self._open[tenant_id] <= 0:
                del self._open[tenant_id]
