"""The webhook outbox on both databases: an event is written in the same transaction as a
job's end, by every store function that ends a job, and only then; claims are leased, a
lapsed lease is retried with the same webhook-id, and every attempt is recorded."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from sqlalchemy import func, select, update

from core import states
from core.codec import pack_lines
from core.db import read_session, write_session
from core.result_lines import result_line
from core.store import webhook_outbox
from core.store.chunk_leases import complete_chunk, start_chunk
from core.store.dispatch import dispatch_chunks
from core.store.ingest import accept_ingest, add_chunks, create_file_job, reject_ingest
from core.store.job_tasks import claim_job_tasks
from core.store.jobs import JobSpec, cancel_job, create_job
from core.store.openai_batches import claim_finalizes, finish_finalize
from core.store.retention import delete_expired_jobs
from core.store.tenants import get_or_create_tenant, set_tenant_webhook
from core.store.webhook_outbox import (
    DELIVERED,
    FAILED,
    LEASE_LOST,
    LOST_ERROR,
    PENDING,
    claim_deliveries,
    record_attempt,
)
from core.submit.jobs import job_chunk_rows
from core.tables import Job, WebhookAttempt, WebhookDelivery
from core.webhooks.targets import WebhookTarget

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
HOOK = WebhookTarget(url="https://hooks.example.com/sluice", secret=SECRET)


def _tenant(db, name="acme"):
    with write_session(db) as s:
        return get_or_create_tenant(session=s, name=name).id


def _inline_job(db, webhook=HOOK, n=4, tenant="acme"):
    tenant_id = _tenant(db, tenant)
    spec = JobSpec(
        model="m",
        task="embed",
        items=[(f"c{i}", f"text {i}") for i in range(n)],
        chunk_size=2,
        webhook=webhook,
    )
    with write_session(db) as s:
        return create_job(session=s, tenant_id=tenant_id, spec=spec, chunks=job_chunk_rows(spec)).id


def _file_job(db, webhook=HOOK, endpoint=None):
    tenant_id = _tenant(db)
    with write_session(db) as s:
        return create_file_job(
            session=s,
            tenant_id=tenant_id,
            model="m",
            task="embed",
            params={},
            priority=0,
            metadata={},
            input_file_id="file_x",
            lines=3,
            on_invalid="fail",
            expires_after_seconds=3600,
            endpoint=endpoint,
            completion_window="24h" if endpoint else None,
            window_seconds=86400 if endpoint else None,
            webhook=webhook,
        ).id


def _events(db, job_id=None):
    with read_session(db) as s:
        q = select(WebhookDelivery)
        if job_id:
            q = q.where(WebhookDelivery.job_id == job_id)
        return list(s.scalars(q))


def _status(db, job_id):
    with read_session(db) as s:
        return s.scalar(select(Job.status).where(Job.id == job_id))


def _run_all_chunks(db):
    with write_session(db) as s:
        sent = dispatch_chunks(session=s, model="m", limit=100, now=time.time(), queue_lease=60)
    for d in sent:
        with write_session(db) as s:
            work = start_chunk(
                session=s, chunk_id=d.chunk_id, token=d.token, worker="w", now=time.time(), lease=60
            )
        assert _events(db) == []  # running is no end
        lines = [result_line(i, c, [1.0]) for i, c, _ in work.records]
        with write_session(db) as s:
            assert complete_chunk(
                session=s,
                work=work,
                outputs=pack_lines(lines),
                completed=len(lines),
                failed=0,
                now=time.time(),
                compute_seconds=0.1,
            )


def _claim_task(db, status, max_attempts=3):
    with write_session(db) as s:
        return claim_job_tasks(
            session=s,
            model="m",
            now=time.time(),
            lease=60,
            max_attempts=max_attempts,
            status=status,
        )


def _one_event(db, job_id, kind, status):
    (event,) = _events(db, job_id)
    assert (event.event_type, event.status, event.attempts) == (kind, PENDING, 0)
    assert (event.url, event.secret) == (HOOK.url, HOOK.secret)
    body = orjson.loads(event.body)
    assert body["id"] == event.id and body["type"] == kind
    assert body["data"]["id"] == job_id and body["data"]["status"] == status == _status(db, job_id)
    return body


def test_a_completed_job_writes_its_event_with_its_end(db_url):
    job_id = _inline_job(db_url)
    _run_all_chunks(db_url)
    body = _one_event(db_url, job_id, "job.completed", "completed")
    assert body["data"]["counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert body["data"]["object"] == "job"


def test_cancelling_writes_the_event_when_the_job_is_cancelled(db_url):
    job_id = _inline_job(db_url)
    with write_session(db_url) as s:
        assert cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id).status == "cancelled"
    _one_event(db_url, job_id, "job.cancelled", "cancelled")
    with write_session(db_url) as s:  # cancelling again ends nothing again
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    assert len(_events(db_url, job_id)) == 1


def test_a_validating_job_cancelled_or_rejected(db_url):
    cancelled = _file_job(db_url)
    with write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=cancelled)
    _one_event(db_url, cancelled, "job.cancelled", "cancelled")

    rejected = _file_job(db_url)
    ((job_id, token),) = _claim_task(db_url, states.VALIDATING)
    assert job_id == rejected
    with write_session(db_url) as s:
        assert (
            reject_ingest(
                session=s, job_id=job_id, token="stale", errors={"data": []}, now=time.time()
            )
            is False
        )
    assert _events(db_url, rejected) == []
    with write_session(db_url) as s:
        assert reject_ingest(
            session=s, job_id=job_id, token=token, errors={"data": []}, now=time.time()
        )
    _one_event(db_url, rejected, "job.failed", "failed")


def test_a_job_whose_ingest_keeps_dying_fails_with_its_event(db_url):
    job_id = _file_job(db_url)
    with write_session(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(task_attempts=3))
    assert _claim_task(db_url, states.VALIDATING) == []
    _one_event(db_url, job_id, "job.failed", "failed")


def test_accepting_an_ingest_queues_without_an_event(db_url):
    job_id = _file_job(db_url)
    ((_, token),) = _claim_task(db_url, states.VALIDATING)
    spec = JobSpec(model="m", task="embed", items=[(None, "a"), (None, "b"), (None, "c")])
    with write_session(db_url) as s:
        assert add_chunks(
            session=s,
            job_id=job_id,
            token=token,
            rows=job_chunk_rows(spec),
            now=time.time(),
            lease=60,
        )
        assert accept_ingest(
            session=s,
            job_id=job_id,
            token=token,
            total=3,
            failed=0,
            chunk_count=1,
            errors=None,
            now=time.time(),
        )
    assert _status(db_url, job_id) == "queued" and _events(db_url) == []
    _run_all_chunks(db_url)
    _one_event(db_url, job_id, "job.completed", "completed")


@pytest.mark.parametrize("finish_as", ["completed", "expired", "cancelled"])
def test_a_batch_announces_its_end_once_its_files_are_written(db_url, finish_as):
    job_id = _file_job(db_url, endpoint="/v1/embeddings")
    with write_session(db_url) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=states.FINALIZING, finish_as=finish_as, total=3, completed=1)
        )
    assert _events(db_url) == []  # finalizing is no end
    with write_session(db_url) as s:
        ((_, token),) = claim_finalizes(session=s, now=time.time(), lease=60, max_attempts=3)
    with write_session(db_url) as s:
        assert finish_finalize(
            session=s,
            job_id=job_id,
            token=token,
            output_file_id="file_out",
            error_file_id="file_err",
            now=time.time(),
        )
    body = _one_event(db_url, job_id, f"batch.{finish_as}", finish_as)
    failed = 0 if finish_as == "completed" else 2  # requests that never ran
    assert body["data"]["counts"] == {"total": 3, "completed": 1, "failed": failed}
    assert body["data"]["object"] == "batch"


def test_no_webhook_no_event_and_the_tenant_default_applies(db_url):
    plain = _inline_job(db_url, webhook=None)
    with write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=plain)
    assert _events(db_url) == []

    other = WebhookTarget(url="https://default.example.com/h", secret=SECRET)
    before = _inline_job(db_url, webhook=None)  # submitted before the default was set
    own = _inline_job(db_url)
    with write_session(db_url) as s:
        assert set_tenant_webhook(session=s, id_or_name="acme", webhook=other)
        assert set_tenant_webhook(session=s, id_or_name="nobody", webhook=other) is None
    for job_id in (before, own):
        with write_session(db_url) as s:
            cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    assert _events(db_url, before)[0].url == other.url
    assert _events(db_url, own)[0].url == HOOK.url  # a job's own webhook wins


def test_the_event_and_the_end_commit_together(db_url, monkeypatch):
    job_id = _inline_job(db_url)
    # A fault after both were written, in the same transaction: neither lands.
    with pytest.raises(RuntimeError), write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
        raise RuntimeError("the database connection dropped before commit")
    assert _status(db_url, job_id) == "queued" and _events(db_url) == []

    # A fault while writing the event: the end is not written either.
    def broken(**_):
        raise RuntimeError("the outbox insert failed")

    monkeypatch.setattr(webhook_outbox, "event_body", broken)
    with pytest.raises(RuntimeError, match="outbox"), write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    assert _status(db_url, job_id) == "queued" and _events(db_url) == []
    monkeypatch.undo()
    with write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    assert _status(db_url, job_id) == "cancelled" and len(_events(db_url)) == 1


def _claim(db, now, worker="w1", lease=30.0):
    with write_session(db) as s:
        return claim_deliveries(session=s, now=now, lease=lease, limit=10, worker=worker)


def _record(db, claim, code=None, error=None, retry=None, now=None):
    with write_session(db) as s:
        return record_attempt(
            session=s,
            claim=claim,
            now=now or time.time(),
            status_code=code,
            error=error,
            retry_at=retry,
        )


def _attempts(db, delivery_id):
    with read_session(db) as s:
        return list(
            s.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.attempt)
            )
        )


def test_claims_are_leased_and_a_lapsed_one_is_retried_with_the_same_id(db_url):
    job_id = _inline_job(db_url)
    with write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    now = time.time()
    (first,) = _claim(db_url, now)
    assert first.attempt == 1 and first.body == _events(db_url)[0].body.encode()
    assert _claim(db_url, now + 1, worker="w2") == []  # leased
    # w1 died mid-POST: its lease lapses and w2 takes the event, same id and body.
    (second,) = _claim(db_url, now + 31, worker="w2")
    assert (second.delivery_id, second.body, second.attempt) == (
        first.delivery_id,
        first.body,
        2,
    )
    lost, current = _attempts(db_url, first.delivery_id)
    assert (lost.worker, lost.error, lost.finished_at) == ("w1", LOST_ERROR, now + 30)
    assert (current.worker, current.finished_at) == ("w2", None)
    # A zombie w1 answering late changes nothing but its own attempt's record...
    assert _record(db_url, first, code=500, retry=now + 40) == LEASE_LOST
    assert _events(db_url)[0].lease_token == second.token
    # ...and w2's failure schedules the next try.
    assert _record(db_url, second, code=503, retry=now + 50) == PENDING
    event = _events(db_url)[0]
    assert (event.status, event.next_attempt_at, event.lease_token) == (PENDING, now + 50, None)
    assert _claim(db_url, now + 49) == []
    (third,) = _claim(db_url, now + 50)
    assert _record(db_url, third, code=204) == DELIVERED
    assert _events(db_url)[0].status == DELIVERED and _claim(db_url, now + 9999) == []
    codes = [(a.attempt, a.status_code, a.error) for a in _attempts(db_url, third.delivery_id)]
    assert codes == [(1, 500, None), (2, 503, None), (3, 204, None)]


def test_a_late_success_still_delivers_and_no_retry_left_fails(db_url):
    a, b = _inline_job(db_url), _inline_job(db_url)
    for job_id in (a, b):
        with write_session(db_url) as s:
            cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    now = time.time()
    first, other = _claim(db_url, now)
    (second,) = [c for c in _claim(db_url, now + 31) if c.delivery_id == first.delivery_id][:1]
    assert _record(db_url, first, code=200) == DELIVERED  # it arrived, lease or not
    assert _record(db_url, second, code=500, retry=now + 99) == LEASE_LOST
    assert {e.id: e.status for e in _events(db_url)}[first.delivery_id] == DELIVERED
    (other,) = [c for c in _claim(db_url, now + 62) if c.delivery_id == other.delivery_id]
    assert _record(db_url, other, error="timeout: ReadTimeout", retry=None) == FAILED
    failed = {e.id: e for e in _events(db_url)}[other.delivery_id]
    assert failed.status == FAILED and failed.finished_at is not None
    assert _claim(db_url, now + 9999) == []


def test_retention_takes_a_jobs_events_and_attempts_with_it(db_url):
    job_id = _inline_job(db_url)
    with write_session(db_url) as s:
        cancel_job(session=s, tenant_id=_tenant(db_url), job_id=job_id)
    (claim,) = _claim(db_url, time.time())
    _record(db_url, claim, code=500, retry=time.time() + 60)
    with write_session(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(expires_at=0))
    with write_session(db_url) as s:
        assert delete_expired_jobs(session=s, now=time.time()) == 1
    with read_session(db_url) as s:
        for table in (WebhookDelivery, WebhookAttempt):
            assert s.scalar(select(func.count()).select_from(table)) == 0
