"""Engine once per process, sessions at the edge, and the schema-version check."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from core.config import settings
from core.errors import SchemaOutdated

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version"
# Alembic announces each of its autogenerate plugins when it is first imported (seven INFO
# lines at every start of the API and the workers); none of them is ever used here.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Writers take the write lock up front: a deferred transaction that later
            # writes can fail with "database is locked" without waiting.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for a database URL (the configured one by default)."""
    return _engine_for(url or settings.database_url)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return _make_engine(url)


@lru_cache(maxsize=8)
def _sessionmakers(url: str) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    engine = get_engine(url)
    writer = engine.execution_options(sqlite_immediate=True)
    return (
        sessionmaker(engine, expire_on_commit=False),
        sessionmaker(writer, expire_on_commit=False),
    )


@contextmanager
def read_session(url: str | None = None) -> Iterator[Session]:
    """A session for reads (and writes that may not contend on SQLite)."""
    with _sessionmakers(url or settings.database_url)[0]() as session:
        yield session


@contextmanager
def write_session(url: str | None = None) -> Iterator[Session]:
    """A session whose transaction takes the write lock first on SQLite; commits on success."""
    with _sessionmakers(url or settings.database_url)[1]() as session, session.begin():
        yield session


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    """The Alembic configuration of this project, pointed at a database URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url or settings.database_url
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision among the migrations shipped with this code (read once per
    process: the code does not change under it)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration: read from
    Alembic's version table directly (Alembic's migration context logs two INFO lines
    each time, which a readiness probe made thousands of a day)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        found = sorted(versions)
    if len(found) > 1:  # branches: not this project's, but not "at head" either
        return ",".join(found)
    return found[0] if found else None


def migrate(url: str | None = None) -> str | None:
    """Bring the database schema to head; return the revision it is at."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    return current_revision(get_engine(url))


def check_schema(url: str | None = None) -> None:
    """Raise SchemaOutdated unless the database is at the migrations' head."""
    current, head = current_revision(get_engine(url)), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing'}, this code needs {head}: "
            "run `sluice migrate`"
        )


def ping(url: str | None = None) -> None:
    """Raise if the database does not answer a trivial query."""
    with get_engine(url).connect() as conn:
        conn.execute(text("SELECT 1"))
