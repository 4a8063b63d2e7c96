"""Weighted fair share of dispatches between tenants: start-time fair queueing.

Each tenant has a tag per model, the virtual time at which its next dispatch is due; each
model has a clock, the earliest due tag among the jobs waiting at its latest dispatch. The
next dispatch goes to the highest priority, then the earliest due tag, where a tag behind
the clock counts as the clock (a tenant that was idle or arrives late gets no credit for
the past), then the least recently served job of that tenant. A dispatch moves the
tenant's tag on by 1 / weight, so backlogged tenants of weights 3 and 1 are served 3:1.
A priority job goes first, and is charged to its tenant's share like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A job with chunks waiting: its priority, tenant, the tenant's weight and tag."""

    job_id: str
    tenant_id: str
    priority: int
    weight: int
    tag: float | None  # None: the tenant was never served on this model
    job_served_at: float | None  # when the job was last dispatched; None: never


def due(tag: float | None, clock: float) -> float:
    """When a tenant's next dispatch is due on a model whose clock reads `clock`."""
    return clock if tag is None or tag < clock else tag


@dataclass(frozen=True)
class Choice:
    """The candidate to dispatch, the model's clock after it, and its tenant's new tag."""

    candidate: Candidate
    clock: float
    tag: float


def order_key(candidate: Candidate, clock: float) -> tuple[int, float, float, str]:
    """Dispatch order: priority first, then the due tag, then the least recently served job."""
    c = candidate
    return (-c.priority, due(c.tag, clock), c.job_served_at or 0.0, c.job_id)


def settle(picked: Candidate, clock: float, earliest_due: float) -> Choice:
    """Charge a dispatch to the picked tenant: its tag moves on by 1 / weight from when it
    was due; the clock moves to the earliest due tag of all candidates (the picked one's,
    unless priority let it go ahead of a tenant due earlier, whose turn must keep)."""
    start = due(picked.tag, clock)
    return Choice(picked, clock=max(clock, earliest_due), tag=start + 1.0 / max(1, picked.weight))


def choose(candidates: Iterable[Candidate], clock: float) -> Choice | None:
    """The next dispatch among jobs with chunks waiting (what core.store.dispatch asks
    the database in one query)."""
    waiting = list(candidates)
    if not waiting:
        return None
    picked = min(waiting, key=lambda c: order_key(c, clock))
    return settle(picked, clock, min(due(c.tag, clock) for c in waiting))
