"""Weighted fair share in the dispatcher's query, on both databases."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import select, update

from core.db import read_session, write_session
from core.store.dispatch import dispatch_chunks
from core.store.jobs import JobSpec, create_job
from core.store.tenants import get_or_create_tenant
from core.submit.jobs import job_chunk_rows
from core.tables import Chunk, DispatchClock, FairShare, Job, Tenant


def _job(db: str, tenant: str, n: int, weight: int = 1, priority: int = 0, model="m") -> str:
    with write_session(db) as s:
        t = get_or_create_tenant(session=s, name=tenant)
        s.execute(update(Tenant).where(Tenant.id == t.id).values(weight=weight))
        spec = JobSpec(
            model=model,
            task="embed",
            items=[(f"c{i}", f"text {i}") for i in range(n)],
            chunk_size=1,
            priority=priority,
        )
        return create_job(session=s, tenant_id=t.id, spec=spec, chunks=job_chunk_rows(spec)).id


def _served(db: str, rounds: int, per_round: int, model="m") -> list[str]:
    """Tenant names of the chunks dispatched, in order, `per_round` at a time."""
    out: list[str] = []
    for _ in range(rounds):
        with write_session(db) as s:
            sent = dispatch_chunks(
                session=s, model=model, limit=per_round, now=time.time(), queue_lease=300
            )
        with read_session(db) as s:
            names = dict(
                s.execute(
                    select(Chunk.id, Tenant.name)
                    .join(Job, Job.id == Chunk.job_id)
                    .join(Tenant, Tenant.id == Job.tenant_id)
                    .where(Chunk.id.in_([d.chunk_id for d in sent]))
                ).all()
            )
        out += [names[d.chunk_id] for d in sent]
    return out


def test_weights_three_to_one_share_dispatches_three_to_one(db_url):
    _job(db_url, "heavy", 600, weight=3)
    _job(db_url, "light", 600, weight=1)
    served = Counter(_served(db_url, rounds=25, per_round=16))
    assert sum(served.values()) == 400
    assert abs(served["heavy"] / served["light"] - 3.0) <= 0.15, served


def test_a_late_tenant_gets_its_turn_within_one_round(db_url):
    _job(db_url, "early", 500, weight=3)
    _job(db_url, "other", 500, weight=1)
    _served(db_url, rounds=10, per_round=20)
    _job(db_url, "late", 500, weight=1)
    first_round = _served(db_url, rounds=1, per_round=5)
    assert "late" in first_round
    served = Counter(_served(db_url, rounds=20, per_round=10))
    assert abs(served["early"] / served["late"] - 3.0) <= 0.3, served
    assert abs(served["other"] / served["late"] - 1.0) <= 0.1, served


def test_priority_first_then_charged_to_the_share(db_url):
    _job(db_url, "a", 200, weight=1)
    _job(db_url, "b", 200, weight=3)
    _job(db_url, "a", 4, weight=1, priority=9)
    served = _served(db_url, rounds=1, per_round=16)
    assert served[:4] == ["a"] * 4
    assert served[4:16] == ["b"] * 12  # a's four turns ahead cost it b's twelve


def test_shares_and_clock_are_kept_per_model(db_url):
    _job(db_url, "a", 50, model="x")
    _job(db_url, "a", 50, model="y")
    _job(db_url, "b", 50, model="y")
    _served(db_url, rounds=1, per_round=30, model="x")  # a alone on x runs far ahead there
    served = Counter(_served(db_url, rounds=1, per_round=20, model="y"))
    assert served == Counter({"a": 10, "b": 10})  # which costs it nothing on y
    with read_session(db_url) as s:
        assert {m for (m,) in s.execute(select(DispatchClock.model))} == {"x", "y"}
        assert s.scalar(select(FairShare.tag).where(FairShare.model == "x")) == 30.0
