"""Retrying a finished job's failed items: a new job of them (same model, params, priority,
metadata and webhook; custom_ids kept), linked by `retry_of`.

Bounded: a retry holds at most max_inputs_per_job items (refused before anything is read
when the job's counts already say more, and stopped, written nowhere, if the items do),
and it is built one window of the job at a time: each bucket's failed items are read,
sorted by length and written as chunks before the next bucket is read.

Once: a job's retry is recorded with its new job (core.store.idempotency, kind `retry`),
so concurrent retries of one job make one job, and a later retry answers with it (retry
that job to go on)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from itertools import chain

from sqlalchemy import insert

from core import states
from core.codec import InputRecord
from core.config import Settings
from core.contracts.params import item_cost
from core.db import read_session, write_session
from core.errors import Conflict, TooLarge
from core.store.chunk_rows import bucketed_rows
from core.store.idempotency import RETRY, IdempotencyClaim, record_claim
from core.store.jobs import JobSpec, create_job
from core.store.results import failed_windows
from core.submit.checks import image_limits
from core.submit.idempotency import Submitted, submit_once
from core.submit.jobs import Submitter, announce, chunk_size, count_submission
from core.submit.lengths import sort_lengths
from core.tables import Chunk, Job
from core.webhooks.targets import WebhookTarget

# The shortest time a retry record answers for its job (the source job's own expiry
# usually rules: the record lives as long as the job that was retried).
MIN_RETRY_RECORD_SECONDS = 3600.0


def _too_many(count: int, cfg: Settings) -> TooLarge:
    return TooLarge(
        f"the job has {count} failed items to retry; a retry takes at most "
        f"{cfg.max_inputs_per_job} (SLUICE_MAX_INPUTS_PER_JOB): download them "
        "(results?only=failed) and submit them as a file job",
        code="too_many_inputs",
        param="job_id",
    )


def runnable_failures(job: Job) -> int:
    """The job's failed items that a retry would run: all but those that failed
    validation (whose input cannot run)."""
    invalid = (job.errors or {}).get("invalid_lines") if job.on_invalid == "skip" else 0
    return max(0, job.failed - (invalid if isinstance(invalid, int) else 0))


def check_retryable(job: Job, cfg: Settings) -> None:
    """Conflict unless the job is a finished native job; TooLarge when its failures alone
    are past max_inputs_per_job."""
    if job.endpoint is not None:
        raise Conflict(
            "a batch's failed requests are in its error file; submit them as a new batch",
            code="batch_retry_unsupported",
            param="job_id",
        )
    if job.status not in states.JOB_TERMINAL:
        raise Conflict(
            f"job is {job.status}; retry it when it has finished",
            code="job_not_finished",
            param="job_id",
        )
    if runnable_failures(job) > cfg.max_inputs_per_job:
        raise _too_many(runnable_failures(job), cfg)


def submit_retry(sub: Submitter, *, tenant_id: str, job: Job) -> Submitted:
    """The job's retry: made now, or the one an earlier (or concurrent) retry made."""
    check_retryable(job, sub.cfg)
    claim = IdempotencyClaim(
        kind=RETRY,
        key=job.id,
        request_hash=job.id,
        ttl_seconds=max(job.expires_at - time.time(), MIN_RETRY_RECORD_SECONDS),
    )
    return submit_once(
        sub.cfg.database_url,
        tenant_id,
        claim,
        lambda c: _write_retry(sub, tenant_id, job, c),
    )


def _write_retry(sub: Submitter, tenant_id: str, job: Job, claim: IdempotencyClaim | None) -> Job:
    """Write the retry job window by window in one transaction (all of it or nothing),
    with its claim; announce it."""
    cfg = sub.cfg
    windows: Iterator[list[InputRecord]] = failed_windows(
        session_factory=partial(read_session, cfg.database_url), job_id=job.id
    )
    first = next(windows, None)
    if first is None:
        raise Conflict("the job has no failed items to retry", code="nothing_to_retry")
    count_submission(sub, tenant_id)
    spec = sub.registry.get(job.model)
    size = chunk_size(cfg, job.model, spec.chunk_size if spec else 512, item_cost(job.params))
    with write_session(cfg.database_url) as session:
        created = create_job(
            session=session,
            tenant_id=tenant_id,
            spec=JobSpec(
                model=job.model,
                task=job.task,
                items=[],  # added below, a window at a time
                params=job.params,
                priority=job.priority,
                metadata=job.meta,
                chunk_size=size,
                expires_after_seconds=cfg.job_retention_days * 86400,
                retry_of=job.id,
                webhook=(
                    WebhookTarget(url=job.webhook_url, secret=job.webhook_secret)
                    if job.webhook_url and job.webhook_secret
                    else None
                ),
            ),
            chunks=[],
        )
        if claim is not None:  # first, so a concurrent retry waits here, not after the work
            record_claim(
                session=session,
                tenant_id=tenant_id,
                claim=claim,
                job_id=created.id,
                now=time.time(),
            )
        total = seq = bucket = 0
        for window in chain([first], windows):
            if total + len(window) > cfg.max_inputs_per_job:
                raise _too_many(total + len(window), cfg)
            # New indices in the old input order; one bucket per window keeps results in it.
            records = [(total + k, cid, value) for k, (_, cid, value) in enumerate(window)]
            lengths, are_tokens = sort_lengths(spec, [r[2] for r in records], image_limits(cfg))
            rows = bucketed_rows(
                model=job.model,
                records=records,
                lengths=lengths,
                chunk_size=size,
                window=len(records),
                lengths_are_tokens=are_tokens,
                first_seq=seq,
                first_bucket=bucket,
                max_chunk_bytes=cfg.max_chunk_bytes,
            )
            session.execute(insert(Chunk), [{**row, "job_id": created.id} for row in rows])
            total, seq, bucket = total + len(records), seq + len(rows), bucket + 1
        created.total, created.chunk_count = total, seq
    announce(sub, job.model)
    return created
