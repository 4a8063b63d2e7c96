"""Response bodies of the webhook delivery log, and rendering its rows into them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from core.store.webhook_outbox import PENDING
from core.tables import WebhookAttempt, WebhookDelivery


class WebhookAttemptOut(BaseModel):
    """One POST of an event and what came of it."""

    attempt: int
    attempted_at: float = Field(description="When it started (Unix seconds)")
    duration_seconds: float | None = Field(description="None while it is in flight")
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered")
    error: str | None = Field(
        description="Why there was no answer: `timeout`, `connection_error`, "
        "`webhook_target_forbidden` (the host resolved to a refused address), `worker_lost` ..."
    )


class WebhookDeliveryOut(BaseModel):
    """An event of the job and its attempts; every attempt carries its id as webhook-id."""

    id: str = Field(description="The webhook-id of every attempt")
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_type: str
    url: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`failed`: no 2xx answer before the retry window (24 h) closed"
    )
    created_at: float
    next_attempt_at: float | None = Field(description="While pending: the next try, at earliest")
    finished_at: float | None
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(BaseModel):
    """Every event of a job (one: its end), oldest first."""

    object: Literal["list"] = "list"
    data: list[WebhookDeliveryOut]


def _attempt_out(row: WebhookAttempt) -> WebhookAttemptOut:
    took = None if row.finished_at is None else round(max(0.0, row.finished_at - row.started_at), 4)
    return WebhookAttemptOut(
        attempt=row.attempt,
        attempted_at=row.started_at,
        duration_seconds=took,
        status_code=row.status_code,
        error=row.error,
    )


def delivery_list(rows: list[tuple[WebhookDelivery, list[WebhookAttempt]]]) -> WebhookDeliveryList:
    """The log of a job's events, as shown."""
    return WebhookDeliveryList(
        data=[
            WebhookDeliveryOut(
                id=d.id,
                event_type=d.event_type,
                url=d.url,
                status=d.status,  # type: ignore[arg-type]
                created_at=d.created_at,
                next_attempt_at=d.next_attempt_at if d.status == PENDING else None,
                finished_at=d.finished_at,
                attempts=[_attempt_out(a) for a in attempts],
            )
            for d, attempts in rows
        ]
    )
