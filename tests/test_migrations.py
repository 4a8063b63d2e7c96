"""The schema comes from Alembic alone, and matches the ORM tables on both databases."""

import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db import alembic_config, check_schema, current_revision, get_engine, head_revision
from core.tables import Base


def test_migrated_schema_matches_the_orm(db_url):
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(get_engine(db_url)) == head_revision()
    check_schema(db_url)


def test_downgrade_then_upgrade(db_url):
    command.downgrade(alembic_config(db_url), "base")
    assert current_revision(get_engine(db_url)) is None
    command.upgrade(alembic_config(db_url), "head")
    assert current_revision(get_engine(db_url)) == head_revision()


def test_worker_refuses_an_unmigrated_database(tmp_path, registry_file):
    env = {
        "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "SLUICE_MODELS_FILE": str(registry_file),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker", "--models", "tiny-embed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "sluice migrate" in out.stderr
