"""ORM tables: tenants and their fair shares, API keys, files, jobs, chunks, the webhook
outbox, the audit log, idempotency keys and usage counters; changed only through
migrations/."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Tenant(Base):
    """A customer: owns keys and jobs, and is the unit of fair scheduling."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    # Not read since fair shares (FairShare) replaced it; kept, as dropping a column
    # rebuilds the table on SQLite.
    last_dispatched_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The default webhook of the tenant's jobs and batches that name none (secrets are kept
    # as given: they must sign, so they cannot be hashed).
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Its share of dispatches under contention (1 to 100).
    weight: Mapped[int] = mapped_column(Integer, server_default="1", default=1)
    # Set while disabled: its keys are refused and its pending chunks are not dispatched.
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Quota overrides; None: the deployment's default (core.config).
    quota_queued_items: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_concurrent_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_stored_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_uploads_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_submissions_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)


class FairShare(Base):
    """A tenant's due tag on one model: the virtual time its next dispatch is due
    (core/fair_share.py); moved by the dispatcher under the model's dispatch lock."""

    __tablename__ = "fair_shares"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[float] = mapped_column(Float)


class DispatchClock(Base):
    """A model's virtual clock: the due tag of its latest dispatch (core/fair_share.py)."""

    __tablename__ = "dispatch_clocks"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    clock: Mapped[float] = mapped_column(Float)


class ApiKey(Base):
    """An API key; only its hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What the key may do, comma-separated (core.store.tenants.SCOPES): `read` and `submit`
    # within its tenant; `admin` reads every tenant's jobs.
    scopes: Mapped[str] = mapped_column(
        String(100), server_default="read,submit", default="read,submit"
    )
    # A label of the operator's choosing (what the key is for).
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # After this the key is refused (set by an expiry at creation, or by a rotation's grace).
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Written at most once a minute per key (api/key_usage.py), never once per request.
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The key a rotation made to replace this one.
    replaced_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Job(Base):
    """A batch of inputs for one model; its items live in chunks."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
        Index("ix_jobs_model_status", "model", "status"),
        Index("ix_jobs_expires_at", "expires_at"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_deadline_at", "deadline_at"),
        # Status leads, for the housekeeper's lookups by status (cancelling, finalizing,
        # validating) and an admin's list of a status, newest first.
        Index("ix_jobs_status_created", "status", "created_at"),
        # A tenant's list of a status, newest first (GET /v1/jobs?status=, the dashboard).
        Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at"),
        # The dashboard's live list: live statuses OR ended since a moment ago; with both
        # arms indexed PostgreSQL answers it with a BitmapOr instead of a scan.
        Index("ix_jobs_finished_at", "finished_at"),
        # An admin's list of every tenant's jobs, newest first.
        Index("ix_jobs_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancelled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float] = mapped_column(Float)
    last_dispatched_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Jobs from files: the file, what to do with invalid lines, and validation's findings.
    input_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    on_invalid: Mapped[str] = mapped_column(String(8), server_default="fail", default="fail")
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    retry_of: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The job-task lease (as a chunk's, but for the job): held by the ingest while the job is
    # validating and by a batch's finalize while it is finalizing (core.store.job_tasks).
    task_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    task_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    task_attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    # Token usage of its finished items.
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    # OpenAI batches: the endpoint of every request, the completion window and its deadline;
    # finalization (writing output and error files under the job-task lease) ends in
    # finish_as (completed, cancelled or expired).
    endpoint: Mapped[str | None] = mapped_column(String(40), nullable=True)
    completion_window: Mapped[str | None] = mapped_column(String(16), nullable=True)
    deadline_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finalizing_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finish_as: Mapped[str | None] = mapped_column(String(20), nullable=True)
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Where its end is announced (Standard Webhooks); none: the tenant's default, if any.
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)


class File(Base):
    """An uploaded JSONL file; its bytes live in file_parts or a shared directory."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_tenant_id_id", "tenant_id", "id"),
        Index("ix_files_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    storage: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class FilePart(Base):
    """One compressed part of a file stored in the database."""

    __tablename__ = "file_parts"

    file_id: Mapped[str] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Chunk(Base):
    """A slice of a job's items: compressed inputs, then compressed result lines, and a lease."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_job_status_seq", "job_id", "status", "seq"),
        Index("ix_chunks_model_status", "model", "status"),
        Index("ix_chunks_status_lease", "status", "lease_expires_at"),
        Index("ix_chunks_job_bucket", "job_id", "bucket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    # Length-bucketing window; results are merged into input order one bucket at a time.
    bucket: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(20))
    n_items: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[bytes] = mapped_column(LargeBinary)
    # The chunk's item indices, ascending; its inputs and result lines follow this order.
    item_indices: Mapped[bytes] = mapped_column(LargeBinary)
    outputs: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    compute_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class WebhookDelivery(Base):
    """The outbox: one event to POST, written in the transaction that ended its job; its
    id is the webhook-id of every attempt, and a lease guards the attempt in flight."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_job_event", "job_id", "event_type", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(200))
    # The exact bytes every attempt sends (and signs).
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class WebhookAttempt(Base):
    """One POST of a delivery: when, by whom, and what came back (a status or an error)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class MessageBatch(Base):
    """An Anthropic message batch: owns one job per model (their ids in `job_ids`); its
    status and counts are derived from theirs. `request_jobs` holds, per request in order,
    the position of its job in `job_ids` (one byte each, compressed), so results stream
    back in request order from several jobs."""

    __tablename__ = "message_batches"
    __table_args__ = (Index("ix_message_batches_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    # Processing ends by then (unrun requests expire); results are kept until purge_at.
    expires_at: Mapped[float] = mapped_column(Float)
    purge_at: Mapped[float] = mapped_column(Float)
    cancel_initiated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    total: Mapped[int] = mapped_column(Integer)
    job_ids: Mapped[list[str]] = mapped_column(JSON)
    request_jobs: Mapped[bytes] = mapped_column(LargeBinary)


class TenantUsage(Base):
    """A tenant's stored bytes: its finished files (as uploaded or written) plus its jobs'
    result blobs (as stored); a counter moved in the transactions that write or delete them
    (core/store/stored_bytes.py), never a scan. A row of its own, not a column of tenants:
    the dispatcher locks tenant rows while it holds jobs, and a finishing chunk holds its
    job when it adds its results here."""

    __tablename__ = "tenant_usage"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    stored_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)


class AuditEvent(Base):
    """One entry of the audit log: an admin action, the use of a revoked or expired key, or
    a cancel; never holds a key's secret. Tenants are kept as ids, not foreign keys, so the
    log outlives what it speaks of."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id", "tenant_id", "id"),
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(40))
    # The tenant the action concerns (whose key, job or settings), if any.
    tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Who did it: a key's id, or `cli` for the operator's command line; and that key's tenant.
    actor: Mapped[str] = mapped_column(String(40))
    actor_tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # What it was done to (a tenant, key, job or batch id).
    target_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class IdempotencyKey(Base):
    """A request's Idempotency-Key (kind `request`), or a job's retry (kind `retry`, keyed
    by the retried job): the job it made, and a digest of the request that made it. Gone
    with that job; ignored, and replaced on reuse, once past expires_at."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_job_id", "job_id"),)

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class UsageCounter(Base):
    """What a job used on one UTC day and one kind of device (cpu, cuda, mps; "" for items
    that failed without running): counters moved in the transactions that count the job's
    results (core/store/usage.py), never a scan. Jobs are kept as ids, not foreign keys,
    so usage outlives the jobs retention removes."""

    __tablename__ = "usage_counters"
    __table_args__ = (Index("ix_usage_counters_day", "day"),)

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    items: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    failed_items: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    images: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    # Filled by the result cache once there is one; 0 until then.
    cache_hits: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    device_seconds: Mapped[float] = mapped_column(Float, server_default="0", default=0.0)
