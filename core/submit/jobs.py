"""Submitting jobs: inline inputs and a file of the tenant's (retries: core.submit.retry).
Each is checked, counted against the tenant's rate, cut into chunks sized to the model's
measured compute, written in one transaction (which refuses a job over the tenant's
quotas, and records the request's Idempotency-Key with its job), and announced to
dispatchers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from redis import Redis
from sqlalchemy.orm import Session

from core.chunking import chunk_size_for
from core.config import Settings
from core.contracts.params import item_cost
from core.contracts.spec import ModelSpec
from core.db import read_session, write_session
from core.errors import NotFound, shown
from core.nudge import nudge_dispatch
from core.store.chunk_rows import bucketed_rows
from core.store.chunk_stats import item_seconds
from core.store.files import get_file
from core.store.idempotency import IdempotencyClaim, record_claim
from core.store.ingest import create_file_job
from core.store.jobs import JobSpec, create_job
from core.store.quotas import check_job_quotas, tenant_quotas
from core.submit.checks import (
    InlineItem,
    check_inline_items,
    check_metadata,
    check_model,
    check_params,
    check_webhook_option,
    image_limits,
)
from core.submit.lengths import sort_lengths
from core.submit.rate import check_rate
from core.tables import Job


@dataclass(frozen=True)
class Submitter:
    """What submitting needs of the deployment: its settings, models and Redis."""

    cfg: Settings
    registry: dict[str, ModelSpec]
    redis: Redis
    # Written with the job: the request's Idempotency-Key (core.submit.idempotency).
    claim: IdempotencyClaim | None = None


@dataclass(frozen=True)
class JobOptions:
    """What a job request asks for besides its inputs."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    expires_after: int | None = None
    on_invalid: str = "fail"
    webhook: dict[str, Any] | None = None  # {url, secret}


JOB_OPTION_NAMES = frozenset(f.name for f in fields(JobOptions))


def job_chunk_rows(spec: JobSpec) -> list[dict[str, Any]]:
    """A job's chunk rows (bucketed by spec.lengths, compressed), built before any
    transaction opens, so a big job holds the database's write lock only for the inserts."""
    records = [(i, cid, x) for i, (cid, x) in enumerate(spec.items)]
    return bucketed_rows(
        model=spec.model,
        records=records,
        lengths=spec.lengths if spec.lengths is not None else [0] * len(records),
        chunk_size=spec.chunk_size,
        window=spec.bucket_window,
        lengths_are_tokens=spec.lengths_are_tokens,
        max_chunk_bytes=spec.max_chunk_bytes,
    )


def count_submission(sub: Submitter, tenant_id: str) -> None:
    """Count one submission against the tenant's per-minute rate (QuotaExceeded past it)."""
    cfg = sub.cfg
    with read_session(cfg.database_url) as session:
        limits = tenant_quotas(session=session, tenant_id=tenant_id, cfg=cfg)
    check_rate(
        sub.redis,
        prefix=cfg.redis_prefix,
        tenant_id=tenant_id,
        per_minute=limits.submissions_per_minute,
    )


def announce(sub: Submitter, model: str) -> None:
    """Wake a dispatcher of the model for the new job."""
    nudge_dispatch(sub.redis, prefix=sub.cfg.redis_prefix, model=model)


def chunk_size(cfg: Settings, model: str, default: int, cost: int = 1) -> int:
    """The model's chunk_size, grown to about chunk_target_seconds of its recent compute,
    over the cost of an item (in plain items: an explained one costs many)."""
    with read_session(cfg.database_url) as session:
        per_item = item_seconds(session=session, model=model)
    size = chunk_size_for(
        per_item,
        default=default,
        target_seconds=cfg.chunk_target_seconds,
        max_items=cfg.max_chunk_items,
    )
    return max(1, size // cost)


def retention_seconds(cfg: Settings, expires_after: int | None) -> float:
    """Seconds a job and its results are kept: the request's, else the server's."""
    return expires_after or cfg.job_retention_days * 86400


def record_submission(sub: Submitter, session: Session, tenant_id: str, job: Job) -> None:
    """Record the submission's idempotency claim, if any, in the job's transaction
    (IntegrityError if a concurrent request with its key committed first)."""
    if sub.claim is not None:
        record_claim(
            session=session, tenant_id=tenant_id, claim=sub.claim, job_id=job.id, now=time.time()
        )


def write_job(sub: Submitter, tenant_id: str, spec: JobSpec) -> Job:
    """Cut the items into chunks, write the job with them, and announce it."""
    rows = job_chunk_rows(spec)
    with write_session(sub.cfg.database_url) as session:
        check_job_quotas(session=session, tenant_id=tenant_id, cfg=sub.cfg, items=len(spec.items))
        job = create_job(session=session, tenant_id=tenant_id, spec=spec, chunks=rows)
        record_submission(sub, session, tenant_id, job)
    announce(sub, job.model)
    return job


def write_file_job(sub: Submitter, *, tenant_id: str, **job: Any) -> Job:
    """Write a job in `validating` (core.store.ingest.create_file_job's fields) and announce
    it: a dispatcher hands it to an ingest."""
    with write_session(sub.cfg.database_url) as session:
        check_job_quotas(session=session, tenant_id=tenant_id, cfg=sub.cfg, items=job["lines"])
        created = create_file_job(session=session, tenant_id=tenant_id, **job)
        record_submission(sub, session, tenant_id, created)
    announce(sub, created.model)
    return created


def submit_inline(
    sub: Submitter,
    *,
    tenant_id: str,
    options: JobOptions,
    inputs: Sequence[InlineItem],
) -> Job:
    """A queued job of inline inputs, every one checked first (nothing is written for a
    request with an invalid item)."""
    cfg = sub.cfg
    spec = check_model(sub.registry, options.model)
    check_metadata(options.metadata, cfg.max_metadata_pairs)
    params = check_params(spec, options.params)
    webhook = check_webhook_option(cfg, options.webhook)
    items = check_inline_items(spec, inputs, len(inputs), cfg)
    lengths, are_tokens = sort_lengths(spec, [v for _, v in items], image_limits(cfg))
    count_submission(sub, tenant_id)
    return write_job(
        sub,
        tenant_id,
        JobSpec(
            model=spec.name,
            task=spec.task,
            items=items,
            params=params,
            priority=options.priority,
            metadata=dict(options.metadata),
            chunk_size=chunk_size(cfg, spec.name, spec.chunk_size, item_cost(params)),
            expires_after_seconds=retention_seconds(cfg, options.expires_after),
            lengths=lengths,
            lengths_are_tokens=are_tokens,
            bucket_window=cfg.bucket_window_items,
            max_chunk_bytes=cfg.max_chunk_bytes,
            webhook=webhook,
        ),
    )


def submit_file(sub: Submitter, *, tenant_id: str, options: JobOptions, input_file_id: str) -> Job:
    """A job in `validating` for a file of the tenant's; a worker's ingest checks its
    lines and cuts its chunks."""
    cfg = sub.cfg
    spec = check_model(sub.registry, options.model)
    check_metadata(options.metadata, cfg.max_metadata_pairs)
    params = check_params(spec, options.params)
    webhook = check_webhook_option(cfg, options.webhook)
    with read_session(cfg.database_url) as session:
        file = get_file(session=session, tenant_id=tenant_id, file_id=input_file_id)
    if file is None:
        raise NotFound(f"no file {shown(input_file_id)}", param="input_file_id")
    count_submission(sub, tenant_id)
    return write_file_job(
        sub,
        tenant_id=tenant_id,
        model=spec.name,
        task=spec.task,
        params=params,
        priority=options.priority,
        metadata=dict(options.metadata),
        input_file_id=file.id,
        lines=file.lines,
        on_invalid=options.on_invalid,
        expires_after_seconds=retention_seconds(cfg, options.expires_after),
        webhook=webhook,
    )
