"""Reaching the real Redis and PostgreSQL of the machine; skip locally, fail in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get(
    "SLUICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def require(service: str, exc: Exception) -> None:
    """Skip a test whose service is missing, except under CI=true where that is a failure."""
    msg = f"{service} unreachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def redis_client() -> redis.Redis:
    """A client on the test Redis, or skip/fail."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        r.ping()
    except redis.RedisError as exc:
        require("Redis", exc)
    return r


def delete_prefix(r: redis.Redis, prefix: str) -> None:
    """Delete every key under a prefix."""
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema; yields a URL whose search_path is that schema only."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        require("PostgreSQL", exc)
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    try:
        yield f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
