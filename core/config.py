"""The one settings object, read from the environment (prefix SLUICE_)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; defaults run everything on one machine."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = "sqlite:///./sluice.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key (Celery's included) starts with this, so several deployments or
    # test runs can share one Redis server without seeing each other.
    redis_prefix: str = "sluice:"
    models_file: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # API processes (uvicorn workers); each answers requests on its own core.
    api_workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # A request body over this many bytes (or of unknown length) is decoded and validated in
    # a worker thread, never on the event loop, and at most large_body_concurrency such
    # requests are taken in at once: the others wait, their bodies unread, so the memory
    # of taking in big inline jobs does not add up.
    large_body_bytes: int = Field(default=1 << 20, ge=0)
    large_body_concurrency: int = Field(default=1, ge=1)
    max_inputs_per_job: int = Field(default=100_000, ge=1)
    max_input_chars: int = Field(default=100_000, ge=1)
    max_custom_id_chars: int = Field(default=512, ge=1)
    max_metadata_pairs: int = Field(default=16, ge=0)
    max_wait_seconds: float = Field(default=60.0, ge=0)
    # Job submissions per tenant per minute (the default of its submissions_per_minute quota).
    jobs_per_minute: int = Field(default=120, ge=1)
    # Quotas per tenant, unless the tenant's own override says otherwise (0 allows none):
    # items not yet finished in its validating, queued and running jobs; jobs not yet
    # finished; bytes stored (finished files plus result blobs); uploads per minute.
    quota_queued_items: int = Field(default=50_000_000, ge=0)
    quota_concurrent_jobs: int = Field(default=1_000, ge=0)
    quota_stored_bytes: int = Field(default=100 << 30, ge=0)
    quota_uploads_per_minute: int = Field(default=60, ge=0)
    page_size_max: int = Field(default=100, ge=1)
    # /metrics answers only `Authorization: Bearer <this>` when set; unset, it is open (like
    # /healthz), so keep it off the public network.
    metrics_token: str | None = None
    # A worker serves its Prometheus metrics on this port (unset: none) and address;
    # `sluice workers` gives its i-th worker port + i.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Live progress: each API process reads a watched job once per this interval for all
    # of its listeners (event streams and long-polls); streams send progress at most twice
    # a second and a `: ping` comment after this many idle seconds; open streams are
    # bounded per process and per tenant.
    watch_interval_seconds: float = Field(default=0.5, ge=0.01, le=10)
    event_heartbeat_seconds: float = Field(default=15.0, gt=0)
    max_event_streams: int = Field(default=1000, ge=1)
    max_event_streams_per_tenant: int = Field(default=100, ge=1)
    # A job unfinished this long while no worker of its model heartbeats says
    # `waiting_for_worker` in its body (each API process reads the heartbeats once a second).
    waiting_for_worker_seconds: float = Field(default=10.0, ge=0)
    # Status GETs per tenant per API process (0: unpaced): past a burst, a read waits for
    # its turn, and one whose turn is more than status_max_wait_seconds away gets 429. At
    # about 75 us of CPU per answer on a small VM, 1,500 a second is a tenth of a core,
    # and 200 clients polling back to back are answered in about 0.13 s each.
    status_reads_per_second: float = Field(default=1500, ge=0)
    status_read_burst: int = Field(default=200, ge=1)
    status_max_wait_seconds: float = Field(default=2.0, ge=0)
    # Slow clients: a request's line and headers must arrive within header_timeout_seconds
    # of the connection's opening (or of the request's first byte), and a body may stall
    # at most body_timeout_seconds between two reads (408 then); each tenant may have at
    # most max_uploads_per_tenant file uploads in progress per API process (429 past it).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_uploads_per_tenant: int = Field(default=4, ge=1)

    lease_seconds: float = Field(default=60.0, gt=0)
    # How long a chunk may wait in the broker before the sweep re-dispatches it (a lost
    # message, a worker killed after taking it). The dispatcher stretches it to several
    # recent chunk durations, so slow models do not expire healthy messages.
    queue_lease_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    queue_depth_per_worker: int = Field(default=2, ge=1)
    cancel_check_seconds: float = Field(default=0.5, gt=0)
    job_retention_days: float = Field(default=30.0, gt=0)
    # Audit entries and usage counters are kept this long (usage outlives its jobs).
    audit_retention_days: float = Field(default=365.0, gt=0)
    usage_retention_days: float = Field(default=400.0, gt=0)
    # Items are sorted by length within windows of this many before chunks are cut. Wider
    # windows cut chunks of narrower length ranges, which plan into fewer, fuller batches
    # (20,000 texts in chunks of 1,366: 8.9% more compute than one sorted run at 4,096,
    # 3.6% at 8,192, none at 20,000); a results download holds one window (max_chunk_items
    # already lets a window grow this far).
    bucket_window_items: int = Field(default=16384, ge=1)
    # Chunks grow past a model's chunk_size to about this much compute each (measured on
    # its recent chunks, or on a sample of the file), up to max_chunk_items.
    chunk_target_seconds: float = Field(default=2.0, gt=0)
    max_chunk_items: int = Field(default=16384, ge=1)
    # ... and to at most this much stored input (images are large): a chunk's inputs are
    # held whole by the worker that runs it, a window's by the ingest that cuts it.
    max_chunk_bytes: int = Field(default=32 << 20, ge=1024)
    bucket_window_bytes: int = Field(default=256 << 20, ge=1024)
    # classify_image: the largest image, encoded, and in pixels (width x height) as its
    # header declares them, checked before any pixel is decoded (decompression bombs).
    max_image_bytes: int = Field(default=8 << 20, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)

    # Uploaded files: size limit, where their bytes go (the database in parts unless a
    # directory every API and worker host shares is set), and how jobs read them.
    max_file_bytes: int = Field(default=1 << 30, ge=1024)
    # Room for an image of max_image_bytes in base64 (4 characters for 3 bytes).
    max_line_bytes: int = Field(default=12 << 20, ge=1024)
    # A gzipped upload is decompressed as it streams in (max_file_bytes bounds what it
    # expands to); one that expands more than this many times is refused early as a bomb.
    max_gzip_ratio: float = Field(default=100.0, ge=1)
    max_items_per_file_job: int = Field(default=10_000_000, ge=1)
    files_dir: Path | None = None
    file_part_bytes: int = Field(default=4 << 20, ge=1024)
    ingest_lease_seconds: float = Field(default=60.0, gt=0)
    max_validation_errors: int = Field(default=100, ge=1)
    # A worker runs each model once on a few texts before it takes work, so the first job
    # does not pay for compiling kernels (models/warm_up.py).
    warm_up_models: bool = True
    # Retention of jobs (with their results) and files, unless a request says otherwise.
    file_retention_days: float = Field(default=30.0, gt=0)

    # Webhooks (Standard Webhooks, from the outbox): targets that resolve to private,
    # loopback, link-local, multicast or reserved addresses are refused unless allowed; a
    # failed delivery is retried after about base x 2^(attempt-1) seconds (jittered, at
    # most max) until window seconds after the event, then given up.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=86400.0, gt=0)
    webhook_concurrency: int = Field(default=4, ge=1, le=64)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)

    # One line per HTTP request (method, path, status, size, time, tenant) on the logger
    # `sluice.access`; never a header (keys travel in Authorization) nor a query value of a
    # name the API does not take.
    access_log: bool = False

    # Only a hash of this pepper-mixed key is stored; outside development it must be set.
    key_pepper: str = "changeme"
    # Each API process remembers a key's check this long: a revoked key, or the keys of a
    # disabled tenant, stop working within it (10 s at most, the promise made to admins).
    key_cache_seconds: float = Field(default=10.0, gt=0, le=10)
    # After `rotate`, the old key keeps working this long (unless the request names a grace).
    key_rotation_grace_seconds: float = Field(default=86400.0, ge=0, le=30 * 86400)

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Settings:
        if self.environment != "development" and self.key_pepper == "changeme":
            raise ValueError("SLUICE_KEY_PEPPER must be set outside development")
        return self

    @model_validator(mode="after")
    def _webhook_lease_outlasts_a_post(self) -> Settings:
        # A lease that lapses while its POST still runs sends the event twice.
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("SLUICE_WEBHOOK_LEASE_SECONDS must exceed the webhook timeout")
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


def redacted_url(url: str) -> str:
    """A database or Redis URL fit for a log line: its password as ***, no query string
    (where libpq and redis-py also take passwords)."""
    parts = urlsplit(url)
    if not parts.netloc:  # sqlite:///path: nothing secret, and urlunsplit would drop "//"
        return url.partition("?")[0]
    host = parts.netloc.rpartition("@")[2]
    if parts.password is not None:
        host = f"{parts.username or ''}:***@{host}"
    elif parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def get_settings() -> Settings:
    """Read settings from the environment (fresh each call; processes cache their own)."""
    return Settings()


settings = get_settings()
