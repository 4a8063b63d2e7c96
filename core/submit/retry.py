"""Retrying a finished job: a new job of its failed items and, when asked, of the items
its cancel kept from running (same model, params, priority, metadata and webhook;
custom_ids kept), linked by `retry_of`, through the same submission rules as any job.

Bounded: a retry holds at most max_inputs_per_job items (refused before anything is read
when the job's counts already say more, and stopped, written nowhere, if the items do),
and it is built one window of the job at a time: each bucket's items are read, sorted by
length and written as chunks before the next bucket is read.

Once: a job's retry is recorded with its new job (core.store.idempotency, kind `retry`,
keyed by the job and what the retry includes), so concurrent retries of one job make one
job, and a later one answers with it (retry that job to go on)."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import replace
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
from core.store.files import get_file
from core.store.idempotency import RETRY, IdempotencyClaim
from core.store.jobs import JobSpec, chunk_status_counts, create_job
from core.store.quotas import check_job_quotas
from core.store.results import retry_windows
from core.submit.checks import image_limits
from core.submit.idempotency import Submitted, submit_once
from core.submit.jobs import (
    Submitter,
    announce,
    chunk_size,
    count_submission,
    record_submission,
    write_file_job,
)
from core.submit.lengths import sort_lengths
from core.tables import Chunk, Job
from core.webhooks.targets import WebhookTarget

# The shortest time a retry record answers for its job (the retried job's own expiry
# usually rules: the record lives as long as the job that was retried).
MIN_RETRY_RECORD_SECONDS = 3600.0


def _too_many(count: int, cfg: Settings) -> TooLarge:
    return TooLarge(
        f"the job has {count} items to retry; a retry takes at most "
        f"{cfg.max_inputs_per_job}, the most a job holds (SLUICE_MAX_INPUTS_PER_JOB): "
        "download them (`only=failed`) and submit them as a file",
        code="too_many_inputs",
        param="job_id",
    )


def runnable_failures(job: Job) -> int:
    """The job's failed items that a retry would run: all but those that failed
    validation (whose input cannot run)."""
    invalid = (job.errors or {}).get("invalid_lines") if job.on_invalid == "skip" else 0
    return max(0, job.failed - (invalid if isinstance(invalid, int) else 0))


def _unrun(job: Job) -> int:
    return states.unrun_items(
        job.status, total=job.total, completed=job.completed, failed=job.failed
    )


def items_to_retry(job: Job, include: Collection[str]) -> int:
    """How many items a retry of the job runs, from its counts."""
    failed = runnable_failures(job) if "failed" in include else 0
    return failed + (_unrun(job) if "cancelled" in include else 0)


def check_retryable(job: Job) -> None:
    """Conflict unless the job is a finished native job."""
    if job.endpoint is not None:
        raise Conflict(
            "a batch's failed requests are in its error file or results; submit them as a "
            "new batch",
            code="batch_retry_unsupported",
            param="job_id",
        )
    if job.status not in states.JOB_TERMINAL:
        raise Conflict(
            f"job is {job.status}; retry it when it has finished",
            code="job_not_finished",
            param="job_id",
        )


def submit_retry(
    sub: Submitter, *, tenant_id: str, job: Job, include: Collection[str] = ("failed",)
) -> Submitted:
    """The job's retry of its failed items and (with "cancelled" in include) the items its
    cancel kept from running: made now, or the one an earlier (or concurrent) retry with
    the same include made. A file job cancelled while it was validating has no items yet:
    its file is read again."""
    cfg = sub.cfg
    check_retryable(job)
    kinds = sorted(set(include))
    claim = IdempotencyClaim(
        kind=RETRY,
        key=f"{job.id}:{'+'.join(kinds)}",
        request_hash=job.id,
        ttl_seconds=max(job.expires_at - time.time(), MIN_RETRY_RECORD_SECONDS),
    )

    def create(claimed: IdempotencyClaim | None) -> Job:
        keyed = replace(sub, claim=claimed)
        unrun_file = "cancelled" in kinds and _unrun(job) and job.input_file_id
        if unrun_file and not _has_chunks(cfg, job.id):
            # A file job's own bound (max_items_per_file_job) rules: its file is read again.
            return _read_file_again(keyed, tenant_id=tenant_id, job=job)
        return _write_retry(keyed, tenant_id, job, kinds)

    return submit_once(cfg.database_url, tenant_id, claim, create)


def _webhook_of(job: Job) -> WebhookTarget | None:
    if job.webhook_url and job.webhook_secret:
        return WebhookTarget(url=job.webhook_url, secret=job.webhook_secret)
    return None


def _has_chunks(cfg: Settings, job_id: str) -> bool:
    with read_session(cfg.database_url) as session:
        return bool(chunk_status_counts(session=session, job_id=job_id))


def _nothing(job: Job, kinds: list[str]) -> Conflict:
    unrun = _unrun(job)
    hint = (
        f'; its {unrun} items that never ran are retried with include ["cancelled"]'
        if unrun and "cancelled" not in kinds
        else ""
    )
    return Conflict(
        f"the job has no {' or '.join(kinds)} items to retry{hint}", code="nothing_to_retry"
    )


def _write_retry(sub: Submitter, tenant_id: str, job: Job, kinds: list[str]) -> Job:
    """Write the retry job window by window in one transaction (all of it or nothing),
    with its claim; announce it."""
    cfg = sub.cfg
    expected = items_to_retry(job, kinds)
    if expected > cfg.max_inputs_per_job:  # the counts say so: nothing is read
        raise _too_many(expected, cfg)
    windows: Iterator[list[InputRecord]] = retry_windows(
        session_factory=partial(read_session, cfg.database_url),
        job_id=job.id,
        failed="failed" in kinds,
        cancelled="cancelled" in kinds,
    )
    first = next(windows, None)
    if first is None:
        raise _nothing(job, kinds)
    count_submission(sub, tenant_id)
    spec = sub.registry.get(job.model)
    size = chunk_size(cfg, job.model, spec.chunk_size if spec else 512, item_cost(job.params))
    with write_session(cfg.database_url) as session:
        # The quotas take the count the job's counts give (what the windows add up to).
        check_job_quotas(session=session, tenant_id=tenant_id, cfg=cfg, items=expected)
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
                webhook=_webhook_of(job),
            ),
            chunks=[],
        )
        # First, so a concurrent retry waits here rather than after the work.
        record_submission(sub, session, tenant_id, created)
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


def _read_file_again(sub: Submitter, *, tenant_id: str, job: Job) -> Job:
    """A job that validates the file of a job cancelled before its items were cut."""
    with read_session(sub.cfg.database_url) as session:
        file = get_file(session=session, tenant_id=tenant_id, file_id=job.input_file_id or "")
    if file is None:
        raise Conflict(
            "the job was cancelled while validating and its input file is gone; upload it "
            "again and submit a new job",
            code="nothing_to_retry",
        )
    count_submission(sub, tenant_id)
    return write_file_job(
        sub,
        tenant_id=tenant_id,
        model=job.model,
        task=job.task,
        params=job.params,
        priority=job.priority,
        metadata=job.meta,
        input_file_id=file.id,
        lines=file.lines,
        on_invalid=job.on_invalid,
        expires_after_seconds=sub.cfg.job_retention_days * 86400,
        retry_of=job.id,
        webhook=_webhook_of(job),
    )
