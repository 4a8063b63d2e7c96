"""How many file uploads each tenant has in progress on this API process: an upload holds
a connection, a row in `uploading` and a part writer for as long as its client sends, so a
slow or hostile client of one tenant cannot pile them up (429 past the bound)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from api.deps import TenantDep
from core.errors import QuotaExceeded

# What a refused client is told to wait before it tries again, in seconds.
RETRY_AFTER_SECONDS = 5


class UploadSlots:
    """Counts uploads in progress per tenant; take() refuses one past the bound."""

    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = per_tenant
        self.open: Counter[str] = Counter()

    def take(self, tenant_id: str) -> None:
        """Count an upload of the tenant, or raise QuotaExceeded(too_many_uploads)."""
        if self.open[tenant_id] >= self.per_tenant:
            raise QuotaExceeded(
                f"this key's tenant has {self.per_tenant} uploads in progress on this API "
                "process, its most; wait for one to finish",
                code="too_many_uploads",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self.open[tenant_id] += 1

    def give_back(self, tenant_id: str) -> None:
        """An upload of the tenant has ended (however it ended)."""
        self.open[tenant_id] -= 1
        if self.open[tenant_id] <= 0:
            del self.open[tenant_id]


async def upload_slot(request: Request, tenant: TenantDep) -> AsyncIterator[None]:
    """Hold one of the tenant's upload slots for the length of the request."""
    slots: UploadSlots = request.app.state.upload_slots
    slots.take(tenant.id)
    try:
        yield
    finally:
        slots.give_back(tenant.id)


UploadSlotDep = Annotated[None, Depends(upload_slot)]
