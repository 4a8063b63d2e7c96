"""The jobs a live list shows: every job still running in a scope (one tenant, or every
tenant for an admin), plus those that ended a moment ago so a watcher sees how they ended.
One bounded read, shared by every watcher of the scope (api/job_list_feed.py)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core import states
from core.tables import Job

# Statuses of a job that may still change.
LIVE_STATUSES = tuple(s for s in states.JOB_STATUSES if s not in states.JOB_TERMINAL)


def live_jobs(
    *, session: Session, tenant_id: str | None, ended_since: float, limit: int
) -> list[Job]:
    """The scope's jobs that are live or finished after ended_since, newest first, at
    most limit; tenant_id None means every tenant's (admin keys only)."""
    q = select(Job).where(or_(Job.status.in_(LIVE_STATUSES), Job.finished_at >= ended_since))
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
    return list(session.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))
