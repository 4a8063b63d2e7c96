"""Reading usage: the counters of a range of UTC days summed by day, model or job, for one
tenant or every tenant, a page at a time in key order, with device-seconds by device kind.
Reads only counter rows (never jobs or chunks), bounded by the range and the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from core.store.usage import COUNTERS, NO_DEVICE
from core.tables import UsageCounter

GroupBy = Literal["day", "model", "job"]
GROUPS: tuple[GroupBy, ...] = ("day", "model", "job")
# Device kinds a report names at most (torch has a handful; a bound all the same).
MAX_DEVICE_KINDS = 32


@dataclass(frozen=True)
class UsageQuery:
    """Which counters to sum: days start to end (YYYY-MM-DD, both included), one tenant's
    or (tenant_id None) every tenant's, grouped by day, model or job."""

    start: str
    end: str
    group_by: GroupBy
    tenant_id: str | None = None


@dataclass(frozen=True)
class UsageSums:
    """Summed counters: item counts, tokens, images, cache hits, device-seconds by kind."""

    items: int = 0
    failed_items: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cache_hits: int = 0
    device_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageRow:
    """One group's sums: its tenant and key (a day, a model or a job id; a job's model)."""

    tenant_id: str
    key: str
    model: str | None
    sums: UsageSums


def _key_column(group_by: GroupBy) -> Any:
    return {"day": UsageCounter.day, "model": UsageCounter.model, "job": UsageCounter.job_id}[
        group_by
    ]


def _where(query: UsageQuery) -> list[ColumnElement[bool]]:
    conditions = [UsageCounter.day >= query.start, UsageCounter.day <= query.end]
    if query.tenant_id is not None:
        conditions.append(UsageCounter.tenant_id == query.tenant_id)
    return conditions


def device_kinds(*, session: Session, query: UsageQuery) -> list[str]:
    """The device kinds with compute time in the query's range, sorted."""
    kinds = session.scalars(
        select(UsageCounter.device)
        .distinct()
        .where(*_where(query), UsageCounter.device != NO_DEVICE)
        .order_by(UsageCounter.device)
        .limit(MAX_DEVICE_KINDS)
    )
    return list(kinds)


def _sum_columns(kinds: list[str]) -> list[Any]:
    """SUM of each counter, then of device-seconds per kind (one column each)."""
    sums: list[Any] = [func.sum(getattr(UsageCounter, name)) for name in COUNTERS]
    for kind in kinds:
        on_kind = func.coalesce(
            func.sum(UsageCounter.device_seconds).filter(UsageCounter.device == kind), 0.0
        )
        sums.append(on_kind)
    return sums


def _sums(values: Any, kinds: list[str]) -> UsageSums:
    counts = {name: int(values[i] or 0) for i, name in enumerate(COUNTERS)}
    seconds = values[len(COUNTERS) :]
    by_kind = {kind: round(float(s or 0.0), 6) for kind, s in zip(kinds, seconds, strict=True)}
    return UsageSums(**counts, device_seconds={k: s for k, s in by_kind.items() if s})


def usage_rows(
    *,
    session: Session,
    query: UsageQuery,
    kinds: list[str],
    limit: int,
    after: tuple[str, str] | None = None,
) -> list[UsageRow]:
    """Up to `limit` groups in (tenant, key) order, after the cursor `after` (a previous
    page's last tenant and key); device-seconds of the given kinds (device_kinds)."""
    key = _key_column(query.group_by)
    group: list[Any] = [UsageCounter.tenant_id, key]
    if query.group_by == "job":
        group.append(UsageCounter.model)  # one per job: names the job's model
    stmt: Select[Any] = select(*group, *_sum_columns(kinds)).where(*_where(query))
    if after is not None:
        stmt = stmt.where(tuple_(UsageCounter.tenant_id, key) > tuple_(*after))
    stmt = stmt.group_by(*group).order_by(UsageCounter.tenant_id, key).limit(limit)
    width = len(group)
    return [
        UsageRow(
            tenant_id=row[0],
            key=row[1],
            model=row[2] if query.group_by == "job" else None,
            sums=_sums(row[width:], kinds),
        )
        for row in session.execute(stmt)
    ]


def usage_totals(*, session: Session, query: UsageQuery, kinds: list[str]) -> UsageSums:
    """The sums over the whole range (every group, every page)."""
    row = session.execute(select(*_sum_columns(kinds)).where(*_where(query))).one()
    return _sums(row, kinds)
