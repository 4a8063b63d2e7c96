"""The schema comes from Alembic alone, and matches the ORM tables on both databases."""

import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

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


def test_0002_backfills_chunks_written_before_buckets(tmp_path):
    import zlib
    from functools import partial

    import orjson

    from core.db import read_session
    from core.result_lines import result_line
    from core.store.results import stream_results

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO tenants VALUES ('t', 't', 0, NULL)"))
        conn.execute(
            text(
                "INSERT INTO jobs VALUES ('j', 't', 'm', 'embed', '{}', '{}', 0, "
                "'completed', 4, 4, 0, 2, 0, 0, 0, 0, NULL, 9e9, NULL)"
            )
        )
        for seq, idx in enumerate(([0, 1], [2, 3])):
            conn.execute(
                text(
                    "INSERT INTO chunks (job_id, model, seq, status, n_items, inputs, outputs, "
                    "completed, failed, attempts) VALUES ('j', 'm', :seq, 'done', 2, :inp, :out, "
                    "2, 0, 1)"
                ),
                {
                    "seq": seq,
                    # blobs as that revision wrote them (zlib), which are still read
                    "inp": zlib.compress(orjson.dumps([(i, f"c{i}", "x") for i in idx]), 6),
                    "out": zlib.compress(
                        b"".join(result_line(i, f"c{i}", [i]) + b"\n" for i in idx), 1
                    ),
                },
            )
    command.upgrade(alembic_config(url), "head")
    lines = b"".join(
        stream_results(session_factory=partial(read_session, url), job_id="j")
    ).splitlines()
    assert [b'"index":%d' % i in line for i, line in enumerate(lines)] == [True] * 4
    get_engine(url).dispose()


def test_0005_carries_the_job_task_lease_across_the_rename(db_url):
    config, engine = alembic_config(db_url), get_engine(db_url)
    command.downgrade(config, "0004")
    with engine.begin() as conn:
        # Columns named: a pooled SQLite connection may prepare against the schema it saw
        # before the downgrade (which had more tenant columns).
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', 0)"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, tenant_id, model, task, params, metadata, priority, "
                "status, total, completed, failed, chunk_count, created_at, updated_at, "
                "expires_at, ingest_token, ingest_expires_at, ingest_attempts) VALUES ('j', "
                "'t', 'm', 'embed', '{}', '{}', 0, 'finalizing', 4, 4, 0, 2, 0, 0, 9e9, "
                "'tok', 123.5, 2)"
            )
        )
    command.upgrade(config, "head")
    assert _lease_of_j(engine, "task") == ("tok", 123.5, 2)
    command.downgrade(config, "0004")
    assert _lease_of_j(engine, "ingest") == ("tok", 123.5, 2)
    command.upgrade(config, "head")
    assert current_revision(engine) == head_revision()


def _lease_of_j(engine: Engine, prefix: str) -> tuple[object, ...]:
    """Job j's lease columns under their name at one revision: prefix_token and so on."""
    columns = ", ".join(f"{prefix}_{name}" for name in ("token", "expires_at", "attempts"))
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT {columns} FROM jobs WHERE id = 'j'")).one())
