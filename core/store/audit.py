"""The audit log: admin actions, uses of revoked or expired keys, and cancels, each written in
the transaction of what it records; read newest first, by tenant or action. No entry ever
holds a key's secret or its hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from core.store.jobs import STOPPABLE, cancel_job
from core.tables import AuditEvent, Job

TENANT_CREATE = "tenant.create"
TENANT_UPDATE = "tenant.update"
TENANT_DISABLE = "tenant.disable"
TENANT_ENABLE = "tenant.enable"
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"
KEY_ROTATE = "key.rotate"
KEY_USE_REVOKED = "key.use_revoked"
KEY_USE_EXPIRED = "key.use_expired"
JOB_CANCEL = "job.cancel"
BATCH_CANCEL = "batch.cancel"
MESSAGE_BATCH_CANCEL = "message_batch.cancel"
ACTIONS = (
    TENANT_CREATE,
    TENANT_UPDATE,
    TENANT_DISABLE,
    TENANT_ENABLE,
    KEY_CREATE,
    KEY_REVOKE,
    KEY_ROTATE,
    KEY_USE_REVOKED,
    KEY_USE_EXPIRED,
    JOB_CANCEL,
    BATCH_CANCEL,
    MESSAGE_BATCH_CANCEL,
)
# A refused key presented again and again is recorded once per this many seconds: a
# client stuck on a revoked key must not fill the log.
REFUSAL_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Actor:
    """Who acts: a key (its id and tenant) or the operator's command line."""

    name: str
    tenant_id: str | None = None


CLI = Actor(name="cli")


def record_event(
    *,
    session: Session,
    action: str,
    actor: Actor,
    now: float,
    tenant_id: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an entry to the log, in the caller's transaction."""
    event = AuditEvent(
        at=now,
        action=action,
        tenant_id=tenant_id,
        actor=actor.name,
        actor_tenant_id=actor.tenant_id,
        target_id=target_id,
        details=details,
    )
    session.add(event)
    session.flush()
    return event


def record_key_refusal(
    *, session: Session, action: str, key_id: str, tenant_id: str, now: float
) -> bool:
    """Record that a revoked or expired key was presented, unless that key's refusal was
    recorded in the last REFUSAL_EVERY_SECONDS; whether an entry was written."""
    recent = exists().where(
        AuditEvent.action == action,
        AuditEvent.actor == key_id,
        AuditEvent.at > now - REFUSAL_EVERY_SECONDS,
    )
    if session.scalar(select(recent)):
        return False
    actor = Actor(name=key_id, tenant_id=tenant_id)
    record_event(
        session=session,
        action=action,
        actor=actor,
        now=now,
        tenant_id=tenant_id,
        target_id=key_id,
    )
    return True


def list_events(
    *,
    session: Session,
    limit: int,
    tenant_id: str | None = None,
    action: str | None = None,
    before: int | None = None,
) -> list[AuditEvent]:
    """Entries newest first (of a tenant, of an action), those older than `before` (an
    entry id) when paging on."""
    q = select(AuditEvent)
    if tenant_id is not None:
        q = q.where(AuditEvent.tenant_id == tenant_id)
    if action is not None:
        q = q.where(AuditEvent.action == action)
    if before is not None:
        q = q.where(AuditEvent.id < before)
    return list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(limit)))


def cancel_recorded(
    *, session: Session, tenant_id: str, job_id: str, actor: Actor, action: str, now: float
) -> Job | None:
    """cancel_job, recorded in the log when it stops the job (a repeated cancel, or one of
    a finished job, changes nothing and is not recorded)."""
    # Locked as cancel_job locks it (the same row, the same transaction).
    before = session.scalar(
        select(Job.status).where(Job.id == job_id, Job.tenant_id == tenant_id).with_for_update()
    )
    job = cancel_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job is not None and before in STOPPABLE:
        record_event(
            session=session,
            action=action,
            actor=actor,
            now=now,
            tenant_id=tenant_id,
            target_id=job_id,
            details={"status_before": before, "model": job.model},
        )
    return job
