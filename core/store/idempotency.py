"""Idempotency records: which job a tenant's key (or a job's retry) made, and a digest of
the request that made it. A record is written in the transaction that creates its job, so
of two concurrent requests with one key exactly one commits (the primary key refuses the
other, whose job rolls back with it)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.tables import IdempotencyKey, Job

# Kinds of record: a client's Idempotency-Key on a creating request, and a job's retry.
REQUEST = "request"
RETRY = "retry"


@dataclass(frozen=True)
class IdempotencyClaim:
    """What a submission records with its job: the key, the request's digest, and how
    long the record answers for it."""

    kind: str
    key: str
    request_hash: str
    ttl_seconds: float


@dataclass(frozen=True)
class EarlierRequest:
    """The job a key made before, and whether that request was this one (same digest)."""

    job: Job
    same_request: bool


def find_earlier(
    *, session: Session, tenant_id: str, claim: IdempotencyClaim, now: float
) -> EarlierRequest | None:
    """The tenant's unexpired record of the key with its job, or None (no record, an
    expired one, or its job already deleted)."""
    row = session.execute(
        select(IdempotencyKey.request_hash, Job)
        .join(Job, Job.id == IdempotencyKey.job_id)
        .where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.kind == claim.kind,
            IdempotencyKey.key == claim.key,
            IdempotencyKey.expires_at > now,
            Job.tenant_id == tenant_id,
        )
    ).first()
    if row is None:
        return None
    request_hash, job = row
    return EarlierRequest(job=job, same_request=request_hash == claim.request_hash)


def record_claim(
    *, session: Session, tenant_id: str, claim: IdempotencyClaim, job_id: str, now: float
) -> None:
    """Record the key for a job in the caller's transaction (an expired record of the key
    is replaced). Raises IntegrityError when a live record holds the key: another request
    with it committed first."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.kind == claim.kind,
            IdempotencyKey.key == claim.key,
            IdempotencyKey.expires_at <= now,
        )
    )
    session.add(
        IdempotencyKey(
            tenant_id=tenant_id,
            kind=claim.kind,
            key=claim.key,
            request_hash=claim.request_hash,
            job_id=job_id,
            created_at=now,
            expires_at=now + claim.ttl_seconds,
        )
    )
    session.flush()
