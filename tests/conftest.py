"""Fixtures: real Redis (own key prefix) and databases (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once, for tests to copy (a copy costs far less than
    running every migration again)."""
    path = tmp_path_factory.mktemp("migrated") / "sluice.db"
    url = f"sqlite:///{path}"
    migrate(url)
    get_engine(url).dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "sluice.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        url = f"sqlite:///{path}"
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


def auth(key: str) -> dict[str, str]:
    """The header that presents an API key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api(cfg: Settings) -> Iterator[Any]:
    """The API in-process (its lifespan run), on this test's database and Redis prefix."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(cfg)) as client:
        yield client


@pytest.fixture
def alice(cfg: Settings) -> dict[str, str]:
    """A key of tenant alice, as a header."""
    return auth(make_key(cfg.database_url, "alice"))


@pytest.fixture
def bob(cfg: Settings) -> dict[str, str]:
    """A key of tenant bob, as a header."""
    return auth(make_key(cfg.database_url, "bob"))


@pytest.fixture(scope="session")
def tiny_runner(registry_file: Path) -> Any:
    """The tiny embed model, loaded once."""
    from core.contracts.spec import load_registry
    from models.embed import EmbedRunner

    return EmbedRunner(load_registry(registry_file)["tiny-embed"])


def worker_ctx(cfg: Settings, runner: Any) -> Any:
    """A worker's context serving tiny-embed with the given runner, for task bodies."""
    from core.celery_app import make_celery
    from core.redis_client import get_redis
    from worker.context import WorkerContext

    return WorkerContext(
        cfg=cfg,
        app=make_celery(cfg),
        redis=get_redis(cfg.redis_url),
        name="test-worker",
        runners={"tiny-embed": runner},
    )


@pytest.fixture
def stack(cfg: Settings, tmp_path: Path) -> Iterator[Any]:
    """A real API process (workers started by the test) on this test's database."""
    from tests.stack import Stack

    s = Stack(cfg, tmp_path / "logs", make_key(cfg.database_url, "e2e"))
    s.start_api()
    yield s
    s.close()
