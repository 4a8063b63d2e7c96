"""The webhook outbox: a job's end writes its event here in the same transaction as its
final status (enqueue_job_event, called by every store function that ends a job); a worker
claims due events under a lease, POSTs them, and records every attempt. A worker that dies
mid-attempt lets the lease lapse, and the next claim tries again with the same webhook-id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Update, insert, or_, select, update
from sqlalchemy.orm import Session

from core import states
from core.contracts.anthropic_requests import MESSAGES_ENDPOINT
from core.ids import new_id, new_token
from core.request_counts import reported_counts
from core.tables import Job, Tenant, WebhookAttempt, WebhookDelivery
from core.webhooks.events import event_body, event_type

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
LEASE_LOST = "lease_lost"
# What an attempt whose worker never reported back is recorded as.
LOST_ERROR = "worker_lost: no result was recorded before the attempt's lease expired"
MAX_ERROR_CHARS = 500


def _rows(session: Session, stmt: Update) -> int:
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def enqueue_job_event(*, session: Session, job_id: str, now: float) -> str | None:
    """Write the event of a job that has just ended, to its webhook (or its tenant's
    default), in the caller's transaction; its id, or None when no webhook is set.

    Call it from the store function that writes the final status, after that write
    succeeded: the event exists if and only if the end was committed.
    """
    job = session.execute(
        select(
            Job.tenant_id,
            Job.status,
            Job.endpoint,
            Job.total,
            Job.completed,
            Job.failed,
            Job.error_file_id,
            Job.webhook_url,
            Job.webhook_secret,
        ).where(Job.id == job_id)
    ).first()
    if job is None or job.status not in states.JOB_TERMINAL:
        return None
    url, secret = job.webhook_url, job.webhook_secret
    if url is None:
        default = session.execute(
            select(Tenant.webhook_url, Tenant.webhook_secret).where(Tenant.id == job.tenant_id)
        ).first()
        url, secret = default if default is not None else (None, None)
    if url is None or secret is None:
        return None
    # A message batch's jobs announce themselves as jobs (their native view).
    is_batch = job.endpoint not in (None, MESSAGES_ENDPOINT)
    kind = event_type(status=job.status, is_batch=is_batch)
    msg_id = new_id("msg")
    counts = reported_counts(
        total=job.total,
        completed=job.completed,
        failed=job.failed,
        status=job.status,
        has_error_file=job.error_file_id is not None,
    )
    body = event_body(
        msg_id=msg_id,
        kind=kind,
        job_id=job_id,
        is_batch=is_batch,
        status=job.status,
        counts=counts,
        at=now,
    )
    session.execute(
        insert(WebhookDelivery).values(
            id=msg_id,
            job_id=job_id,
            tenant_id=job.tenant_id,
            event_type=kind,
            url=url,
            secret=secret,
            body=body.decode(),
            status=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    return msg_id


@dataclass(frozen=True)
class DeliveryClaim:
    """An event a worker holds the lease of: what to send, and which attempt this is."""

    delivery_id: str
    token: str
    attempt_id: int
    attempt: int
    url: str
    secret: str
    body: bytes
    created_at: float


def _due(now: float) -> Any:
    free = or_(WebhookDelivery.lease_token.is_(None), WebhookDelivery.lease_expires_at < now)
    return (WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now, free)


def has_due_deliveries(*, session: Session, now: float) -> bool:
    """Whether any event waits to be sent (a cheap read before a write transaction)."""
    return session.scalar(select(WebhookDelivery.id).where(*_due(now)).limit(1)) is not None


def claim_deliveries(
    *, session: Session, now: float, lease: float, limit: int, worker: str
) -> list[DeliveryClaim]:
    """Due events no live attempt holds, each now leased to this worker with its attempt
    recorded as started. Rows another transaction is claiming are skipped (PostgreSQL);
    on SQLite writers are serial and the conditional update decides."""
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.lease_token,
            WebhookDelivery.lease_expires_at,
            WebhookDelivery.attempts,
            WebhookDelivery.url,
            WebhookDelivery.secret,
            WebhookDelivery.body,
            WebhookDelivery.created_at,
        )
        .where(*_due(now))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    out: list[DeliveryClaim] = []
    for row in rows:
        token = new_token()
        held = (
            WebhookDelivery.lease_token.is_(None)
            if row.lease_token is None
            else WebhookDelivery.lease_token == row.lease_token
        )
        moved = _rows(
            session,
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id, WebhookDelivery.status == PENDING, held)
            .values(
                lease_token=token,
                lease_expires_at=now + lease,
                attempts=WebhookDelivery.attempts + 1,
            ),
        )
        if moved != 1:
            continue
        if row.lease_token is not None:  # the last attempt's worker never reported back
            session.execute(
                update(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == row.id, WebhookAttempt.finished_at.is_(None))
                .values(finished_at=row.lease_expires_at, error=LOST_ERROR)
            )
        attempt = WebhookAttempt(
            delivery_id=row.id, attempt=row.attempts + 1, worker=worker[:200], started_at=now
        )
        session.add(attempt)
        session.flush()
        out.append(
            DeliveryClaim(
                delivery_id=row.id,
                token=token,
                attempt_id=attempt.id,
                attempt=row.attempts + 1,
                url=row.url,
                secret=row.secret,
                body=row.body.encode(),
                created_at=row.created_at,
            )
        )
    return out


def record_attempt(
    *,
    session: Session,
    claim: DeliveryClaim,
    now: float,
    status_code: int | None,
    error: str | None,
    retry_at: float | None,
) -> str:
    """Record how an attempt went, and move the event on: delivered on a 2xx answer,
    else due again at retry_at, or failed for good when that is None. Returns the
    event's status, or lease_lost when another attempt holds it now (only a success is
    recorded then, since the event did arrive)."""
    session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.id == claim.attempt_id)
        .values(
            finished_at=now,
            status_code=status_code,
            error=error[:MAX_ERROR_CHARS] if error else None,
        )
    )
    released = {"lease_token": None, "lease_expires_at": None}
    this = WebhookDelivery.id == claim.delivery_id
    pending = WebhookDelivery.status == PENDING
    if status_code is not None and 200 <= status_code < 300:
        # Even if its lease lapsed (or a later attempt gave up) meanwhile: it arrived.
        stmt = update(WebhookDelivery).where(this, WebhookDelivery.status != DELIVERED)
        _rows(session, stmt.values(status=DELIVERED, finished_at=now, **released))
        return DELIVERED
    held = (this, pending, WebhookDelivery.lease_token == claim.token)
    if retry_at is None:
        values: dict[str, Any] = {"status": FAILED, "finished_at": now, **released}
    else:
        values = {"next_attempt_at": retry_at, **released}
    if _rows(session, update(WebhookDelivery).where(*held).values(values)) != 1:
        return LEASE_LOST
    return FAILED if retry_at is None else PENDING


def job_deliveries(
    *, session: Session, job_id: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A job's events (the caller checked the job is the tenant's), each with its attempts
    in order."""
    deliveries = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
    )
    if not deliveries:
        return []
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    for attempt in session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(list(attempts)))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
    ):
        attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]
