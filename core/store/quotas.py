"""Quotas per tenant: the limits (the deployment's defaults, or the tenant's overrides) and
the checks made in the transactions that would go over them, so nothing is half-created:
queued items, concurrent jobs and stored bytes for a job, stored bytes for an upload. (The
per-minute rates are counted in Redis: core/submit/rate.py.)"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import states
from core.config import Settings
from core.errors import QuotaExceeded
from core.store.stored_bytes import stored_bytes
from core.store.tenant_admin import QUOTA_KINDS, quotas_of
from core.tables import Job, Tenant

# Items of these jobs are waiting or running (a cancelling job's will not run).
QUEUED_STATUSES = (states.VALIDATING, states.QUEUED, states.IN_PROGRESS)
UNFINISHED_STATUSES = tuple(s for s in states.JOB_STATUSES if s not in states.JOB_TERMINAL)
# When a queue or the number of running jobs is full, jobs finishing make room: try again
# after about this long.
WAIT_FOR_ROOM_SECONDS = 30


@dataclass(frozen=True)
class Quotas:
    """A tenant's limits, each in force (0 allows none)."""

    queued_items: int
    concurrent_jobs: int
    stored_bytes: int
    uploads_per_minute: int
    submissions_per_minute: int


def quotas_for(tenant: Tenant | None, cfg: Settings) -> Quotas:
    """The tenant's overrides where it has them, the deployment's defaults elsewhere."""
    defaults = {
        "queued_items": cfg.quota_queued_items,
        "concurrent_jobs": cfg.quota_concurrent_jobs,
        "stored_bytes": cfg.quota_stored_bytes,
        "uploads_per_minute": cfg.quota_uploads_per_minute,
        "submissions_per_minute": cfg.jobs_per_minute,
    }
    overrides = quotas_of(tenant) if tenant is not None else {}
    limits: dict[str, int] = {}
    for kind in QUOTA_KINDS:
        override = overrides.get(kind)
        limits[kind] = defaults[kind] if override is None else override
    return Quotas(**limits)


def tenant_quotas(*, session: Session, tenant_id: str, cfg: Settings) -> Quotas:
    """The limits in force for a tenant, read now."""
    return quotas_for(session.get(Tenant, tenant_id), cfg)


def over_quota(
    quota: str, limit: int, current: int, requested: int, retry_after: int | None
) -> QuotaExceeded:
    """The 429 of going over a quota, naming it, its limit and the current use."""
    return QuotaExceeded(
        f"over the {quota} quota: {current:,} in use, {requested:,} more asked, "
        f"the limit is {limit:,}",
        code="quota_exceeded",
        retry_after=retry_after,
        details={"quota": quota, "limit": limit, "current": current, "requested": requested},
    )


def job_usage(*, session: Session, tenant_id: str) -> tuple[int, int]:
    """(items not yet finished in its queued jobs, jobs not yet finished) of a tenant."""
    mine = Job.tenant_id == tenant_id
    items = session.scalar(
        select(func.coalesce(func.sum(Job.total - Job.completed - Job.failed), 0)).where(
            mine, Job.status.in_(QUEUED_STATUSES)
        )
    )
    jobs = session.scalar(
        select(func.count()).select_from(Job).where(mine, Job.status.in_(UNFINISHED_STATUSES))
    )
    return int(items or 0), int(jobs or 0)


def check_job_quotas(
    *, session: Session, tenant_id: str, cfg: Settings, items: int, jobs: int = 1
) -> None:
    """In the transaction that writes `jobs` jobs of `items` items in all (a message batch
    has one per model): QuotaExceeded if they would take the tenant over its concurrent
    jobs or queued items, or the tenant already stores its quota of bytes. The tenant's
    usage row is held until commit, so two submissions cannot both take the last room."""
    stored = stored_bytes(session=session, tenant_id=tenant_id, lock=True)
    limits = tenant_quotas(session=session, tenant_id=tenant_id, cfg=cfg)
    if stored >= limits.stored_bytes:
        raise over_quota("stored_bytes", limits.stored_bytes, stored, 0, None)
    queued, unfinished = job_usage(session=session, tenant_id=tenant_id)
    if unfinished + jobs > limits.concurrent_jobs:
        wait = WAIT_FOR_ROOM_SECONDS if jobs <= limits.concurrent_jobs else None
        raise over_quota("concurrent_jobs", limits.concurrent_jobs, unfinished, jobs, wait)
    if queued + items > limits.queued_items:
        # A job larger than the whole quota can never fit: waiting does not help.
        wait = WAIT_FOR_ROOM_SECONDS if items <= limits.queued_items else None
        raise over_quota("queued_items", limits.queued_items, queued, items, wait)


def check_upload_room(
    *, session: Session, tenant_id: str, cfg: Settings, size: int, counted: bool = False
) -> None:
    """QuotaExceeded if storing `size` more bytes takes the tenant over its stored bytes:
    before an upload's body is read (size: what it declares), and in the transaction that
    finishes it, once its bytes are counted (counted: the counter's row is then held, so
    two uploads cannot both take the last room)."""
    stored = stored_bytes(session=session, tenant_id=tenant_id)
    if counted:
        stored -= size
    limit = tenant_quotas(session=session, tenant_id=tenant_id, cfg=cfg).stored_bytes
    if stored + size > limit:
        raise over_quota("stored_bytes", limit, stored, size, None)
