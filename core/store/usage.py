"""Usage counters (usage_counters): what each job used per UTC day and device kind, moved
in the same transactions that count its results (a finished chunk, a chunk failed by the
sweep, the invalid lines an ingest skips), so usage always sums to what the jobs report
and is never found by scanning.

Lock order: a counter row is taken after its job's row (every writer updates the job
first), so two chunks of one job queue on the job, never on each other's counters."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.tables import Job, UsageCounter

# Tasks whose items are images: each finished item counts as one image.
IMAGE_TASKS = frozenset({"classify_image"})
# The device of items that failed without running (lost workers, invalid lines).
NO_DEVICE = ""
DEFAULT_DEVICE = "cpu"
COUNTERS = ("items", "failed_items", "input_tokens", "output_tokens", "images", "cache_hits")


@dataclass(frozen=True)
class UsageDelta:
    """What one transaction adds to a job's usage."""

    items: int = 0
    failed_items: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cache_hits: int = 0
    device_seconds: float = 0.0

    def is_empty(self) -> bool:
        """Whether it adds nothing."""
        return not (any(getattr(self, name) for name in COUNTERS) or self.device_seconds)


def usage_day(now: float) -> str:
    """The UTC day (YYYY-MM-DD) a moment's usage is counted on."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def chunk_usage(
    *,
    task: str,
    completed: int,
    failed: int,
    prompt_tokens: int,
    completion_tokens: int,
    compute_seconds: float,
) -> UsageDelta:
    """The usage of a finished chunk: its counts, tokens and compute time; an image task's
    finished items are images."""
    return UsageDelta(
        items=completed,
        failed_items=failed,
        input_tokens=prompt_tokens,
        output_tokens=completion_tokens,
        images=completed if task in IMAGE_TASKS else 0,
        device_seconds=max(compute_seconds, 0.0),
    )


def add_usage(
    *,
    session: Session,
    tenant_id: str,
    model: str,
    job_id: str,
    device: str,
    now: float,
    delta: UsageDelta,
) -> None:
    """Add delta to the counters of a job's day and device (the row made if it has none)."""
    if delta.is_empty():
        return
    values = {name: getattr(delta, name) for name in (*COUNTERS, "device_seconds")}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(UsageCounter).values(
        tenant_id=tenant_id,
        day=usage_day(now),
        model=model,
        job_id=job_id,
        device=device[:16],
        **values,
    )
    table = UsageCounter.__table__.c
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.tenant_id, table.day, table.model, table.job_id, table.device],
            set_={name: table[name] + stmt.excluded[name] for name in values},
        )
    )


def add_job_usage(
    *, session: Session, job_id: str, now: float, delta: UsageDelta, device: str = NO_DEVICE
) -> None:
    """Add delta to a job's usage (its tenant and model read from the job's row, which the
    caller has just updated and so holds)."""
    if delta.is_empty():
        return
    row = session.execute(select(Job.tenant_id, Job.model).where(Job.id == job_id)).first()
    if row is not None:
        add_usage(
            session=session,
            tenant_id=row.tenant_id,
            model=row.model,
            job_id=job_id,
            device=device,
            now=now,
            delta=delta,
        )
