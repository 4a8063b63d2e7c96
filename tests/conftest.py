"""Fixtures: real Redis (own key prefix) and databases (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.db import get_engine, migrate, write_session
from core.store.tenants import create_key
from tests.services import REDIS_URL, delete_prefix, pg_schema, redis_client
from tests.tiny_models import build_registry


@pytest.fixture(scope="session")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models.yaml with the packaged MiniLM and tiny seeded models of each task, built once."""
    return build_registry(tmp_path_factory.mktemp("models"))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, deleted afterwards."""
    r = redis_client()
    prefix = f"sluicetest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefix(r, prefix)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sluice.db'}"
        migrate(url)
        yield url
        get_engine(url).dispose()
        return
    with pg_schema() as url:
        migrate(url)
        yield url
        get_engine(url).dispose()


@pytest.fixture
def cfg(db_url: str, redis_prefix: str, registry_file: Path) -> Settings:
    """Settings pointing at this test's database and Redis prefix."""
    return Settings(
        database_url=db_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        models_file=registry_file,
        lease_seconds=3,
        queue_lease_seconds=5,
        sweep_interval_seconds=0.5,
        dispatch_interval_seconds=0.2,
        cancel_check_seconds=0.05,
    )


def make_key(db_url: str, tenant: str) -> str:
    """A new API key for a tenant."""
    with write_session(db_url) as session:
        return create_key(session=session, tenant_name=tenant)[1]
