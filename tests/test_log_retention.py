"""Audit entries and usage counters past their retention are deleted, a bounded batch a
round, on both databases; newer ones stay."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from core.db import read_session, write_session
from core.store.audit import CLI, record_event
from core.store.retention import delete_old_audit_events, delete_old_usage
from core.store.tenants import get_or_create_tenant
from core.store.usage import UsageDelta, add_usage
from core.tables import AuditEvent, UsageCounter
from tests.conftest import worker_ctx
from worker.housekeeper import Housekeeper

DAY = 86400.0


def _count(db: str, table) -> int:
    with read_session(db) as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def test_old_audit_entries_go_in_batches_and_new_ones_stay(db_url):
    now = time.time()
    with write_session(db_url) as s:
        tenant = get_or_create_tenant(session=s, name="acme")
        for age_days in [400] * 5 + [10] * 3:  # made in time order, oldest first
            record_event(
                session=s,
                action="tenant.update",
                actor=CLI,
                now=now - age_days * DAY,
                tenant_id=tenant.id,
            )
    with write_session(db_url) as s:
        assert delete_old_audit_events(session=s, before=now - 365 * DAY, limit=3) == 3
    with write_session(db_url) as s:
        assert delete_old_audit_events(session=s, before=now - 365 * DAY, limit=3) == 2
    with write_session(db_url) as s:
        assert delete_old_audit_events(session=s, before=now - 365 * DAY, limit=3) == 0
    with read_session(db_url) as s:
        left = s.scalars(select(AuditEvent.at)).all()
    assert len(left) == 3 and min(left) > now - 365 * DAY


def test_usage_counters_of_days_past_retention_go(db_url):
    now = time.time()
    with write_session(db_url) as s:
        tenant = get_or_create_tenant(session=s, name="acme")
        for age_days, job in [(500, "job_a"), (450, "job_b"), (401, "job_c"), (2, "job_d")]:
            add_usage(
                session=s,
                tenant_id=tenant.id,
                model="m",
                job_id=job,
                device="cpu",
                now=now - age_days * DAY,
                delta=UsageDelta(items=5),
            )
    with write_session(db_url) as s:
        assert delete_old_usage(session=s, before=now - 400 * DAY, limit=2) == 2
    with write_session(db_url) as s:
        assert delete_old_usage(session=s, before=now - 400 * DAY, limit=2) == 1
    with write_session(db_url) as s:
        assert delete_old_usage(session=s, before=now - 400 * DAY) == 0
    with read_session(db_url) as s:
        assert s.scalars(select(UsageCounter.job_id)).all() == ["job_d"]
    assert _count(db_url, UsageCounter) == 1


def test_the_housekeepers_retention_round_applies_both_settings(cfg, tiny_runner):
    now = time.time()
    with write_session(cfg.database_url) as s:
        tenant = get_or_create_tenant(session=s, name="acme")
        for age_days in (cfg.audit_retention_days + 1, 1):
            record_event(session=s, action="tenant.update", actor=CLI, now=now - age_days * DAY)
        for age_days, job in ((cfg.usage_retention_days + 2, "job_old"), (1, "job_new")):
            add_usage(
                session=s,
                tenant_id=tenant.id,
                model="m",
                job_id=job,
                device="cpu",
                now=now - age_days * DAY,
                delta=UsageDelta(items=1),
            )
    Housekeeper(worker_ctx(cfg, tiny_runner)).retention(now)
    assert _count(cfg.database_url, AuditEvent) == 1
    with read_session(cfg.database_url) as s:
        assert s.scalars(select(UsageCounter.job_id)).all() == ["job_new"]
