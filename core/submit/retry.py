"""Retrying a finished job: a new job of its failed items and, when asked, of the items
its cancel kept from running, through the same submission path as any job."""

from __future__ import annotations

from collections.abc import Collection
from functools import partial

from core import states
from core.config import Settings
from core.contracts.params import item_cost
from core.db import read_session
from core.errors import Conflict
from core.store.files import get_file
from core.store.jobs import JobSpec, chunk_status_counts
from core.store.results import retry_items
from core.submit.checks import image_limits
from core.submit.jobs import (
    Submitter,
    chunk_size,
    count_submission,
    write_file_job,
    write_job,
)
from core.submit.lengths import sort_lengths
from core.tables import Job
from core.webhooks.targets import WebhookTarget


def submit_retry(
    sub: Submitter, *, tenant_id: str, job: Job, include: Collection[str] = ("failed",)
) -> Job:
    """A new job of a finished job's failed items and (with "cancelled" in include) the
    items its cancel kept from running (same model, params, priority and metadata;
    custom_ids kept), linked to it by `retry_of`, bucketed by the same length rule as a
    submission, announced to the same webhook; at most max_inputs_per_job items. Items
    that failed validation are left out: they cannot run. A file job cancelled while it
    was validating has no items yet: its file is read again."""
    cfg = sub.cfg
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
    unrun = states.unrun_items(
        job.status, total=job.total, completed=job.completed, failed=job.failed
    )
    if "cancelled" in include and unrun and job.input_file_id and not _has_chunks(cfg, job.id):
        return _read_file_again(sub, tenant_id=tenant_id, job=job)
    items = retry_items(
        session_factory=partial(read_session, cfg.database_url),
        job_id=job.id,
        failed="failed" in include,
        cancelled="cancelled" in include,
        limit=cfg.max_inputs_per_job,
    )
    if not items:
        hint = (
            f'; its {unrun} items that never ran are retried with include ["cancelled"]'
            if unrun and "cancelled" not in include
            else ""
        )
        raise Conflict(
            f"the job has no {' or '.join(sorted(include))} items to retry{hint}",
            code="nothing_to_retry",
        )
    count_submission(sub, tenant_id)
    spec = sub.registry.get(job.model)
    lengths, are_tokens = sort_lengths(spec, [v for _, v in items], image_limits(cfg))
    return write_job(
        sub,
        tenant_id,
        JobSpec(
            model=job.model,
            task=job.task,
            items=items,
            params=job.params,
            priority=job.priority,
            metadata=job.meta,
            chunk_size=chunk_size(
                cfg, job.model, spec.chunk_size if spec else 512, item_cost(job.params)
            ),
            expires_after_seconds=cfg.job_retention_days * 86400,
            lengths=lengths,
            lengths_are_tokens=are_tokens,
            bucket_window=cfg.bucket_window_items,
            max_chunk_bytes=cfg.max_chunk_bytes,
            retry_of=job.id,
            webhook=_webhook_of(job),
        ),
    )


def _webhook_of(job: Job) -> WebhookTarget | None:
    if job.webhook_url and job.webhook_secret:
        return WebhookTarget(url=job.webhook_url, secret=job.webhook_secret)
    return None


def _has_chunks(cfg: Settings, job_id: str) -> bool:
    with read_session(cfg.database_url) as session:
        return bool(chunk_status_counts(session=session, job_id=job_id))


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
