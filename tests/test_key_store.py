"""Keys and tenants in the store, on both databases: a key's last use is written at most
once a minute (counted in the statements the database receives), a disabled tenant's
pending chunks are not dispatched, what a presented key is, and the migration of keys
stored without scopes."""

import asyncio
import time

import pytest
from alembic import command
from sqlalchemy import event, select, text

from api.key_usage import LastUsed
from core.db import alembic_config, get_engine, read_session, write_session
from core.store.api_keys import touch_key
from core.store.audit import CLI
from core.store.tenant_admin import set_tenant_disabled
from core.store.tenants import (
    EXPIRED,
    REVOKED,
    TENANT_DISABLED,
    Caller,
    KeyRefusal,
    create_key,
    lookup_key,
    tenant_named,
)
from core.tables import ApiKey
from tests.test_store import _dispatch, _job, _job_of


class UpdatesOfKeys:
    """Counts the UPDATEs of api_keys that reach the database."""

    def __init__(self, db_url: str) -> None:
        self.engine, self.count = get_engine(db_url), 0

    def _seen(self, conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            self.count += 1

    def __enter__(self) -> "UpdatesOfKeys":
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def _key(db_url: str, tenant: str = "acme") -> tuple[str, str]:
    """(key id, secret) of a new key."""
    with write_session(db_url) as session:
        _, secret = create_key(session=session, tenant_name=tenant)
        found = lookup_key(session=session, key=secret, now=time.time())
        assert isinstance(found, Caller)
        return found.key_id, secret


def _last_used(db_url: str, key_id: str) -> float | None:
    with read_session(db_url) as session:
        return session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))


def test_touch_changes_the_row_at_most_once_per_interval(db_url):
    key_id, _ = _key(db_url)
    with write_session(db_url) as session:
        assert touch_key(session=session, key_id=key_id, now=1000.0, every=60)
        assert not touch_key(session=session, key_id=key_id, now=1059.0, every=60)
        assert touch_key(session=session, key_id=key_id, now=1060.0, every=60)
    assert _last_used(db_url, key_id) == 1060.0


def test_an_api_writes_last_use_once_however_many_requests(api, cfg, alice):
    with UpdatesOfKeys(cfg.database_url) as updates:
        for _ in range(40):
            assert api.get("/v1/jobs", headers=alice).status_code == 200
        deadline = time.monotonic() + 10
        while updates.count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(40):
            assert api.get("/v1/models", headers=alice).status_code == 200
        time.sleep(0.3)  # a write these requests had started would land by now
    assert updates.count == 1
    with read_session(cfg.database_url) as session:
        used = session.scalars(select(ApiKey.last_used_at)).all()
    assert len(used) == 1 and used[0] is not None and used[0] <= time.time()


def test_last_use_is_written_again_once_its_interval_passed(db_url):
    key_id, _ = _key(db_url)

    async def uses() -> list[float | None]:
        seen = []
        usage = LastUsed(db_url, every=0.3)
        for _ in range(2):
            for _ in range(20):
                usage.note(key_id)
            await usage.close()
            seen.append(_last_used(db_url, key_id))
            await asyncio.sleep(0.35)
        return seen

    with UpdatesOfKeys(db_url) as updates:
        first, second = asyncio.run(uses())
    assert updates.count == 2
    assert first is not None and second is not None and second > first


def test_a_disabled_tenants_chunks_wait_until_it_is_enabled(db_url):
    acme = _job(db_url, tenant="acme", n=6, chunk_size=2)
    other = _job(db_url, tenant="other", n=4, chunk_size=2)
    with write_session(db_url) as session:
        tenant = tenant_named(session=session, id_or_name="acme")
        set_tenant_disabled(session=session, tenant=tenant, disabled=True, actor=CLI, now=1.0)
    sent = _dispatch(db_url, 10)
    assert [_job_of(db_url, d.chunk_id) for d in sent] == [other, other]
    assert _dispatch(db_url, 10) == []
    with write_session(db_url) as session:
        tenant = tenant_named(session=session, id_or_name="acme")
        set_tenant_disabled(session=session, tenant=tenant, disabled=False, actor=CLI, now=2.0)
    assert [_job_of(db_url, d.chunk_id) for d in _dispatch(db_url, 10)] == [acme] * 3


def test_what_a_presented_key_is(db_url):
    key_id, secret = _key(db_url)
    with read_session(db_url) as session:
        assert lookup_key(session=session, key="sk-sluice-nothing", now=0) is None
        assert lookup_key(session=session, key="not-a-key", now=0) is None
    with write_session(db_url) as session:
        session.get(ApiKey, key_id).expires_at = 100.0
    with read_session(db_url) as session:
        assert isinstance(lookup_key(session=session, key=secret, now=99.0), Caller)
        assert lookup_key(session=session, key=secret, now=100.0) == KeyRefusal(
            EXPIRED, key_id, session.get(ApiKey, key_id).tenant_id
        )
    with write_session(db_url) as session:
        set_tenant_disabled(
            session=session,
            tenant=tenant_named(session=session, id_or_name="acme"),
            disabled=True,
            actor=CLI,
            now=1.0,
        )
    with read_session(db_url) as session:
        assert lookup_key(session=session, key=secret, now=1.0).reason == TENANT_DISABLED
    with write_session(db_url) as session:
        session.get(ApiKey, key_id).revoked_at = 50.0
    with read_session(db_url) as session:
        assert lookup_key(session=session, key=secret, now=1.0).reason == REVOKED


@pytest.mark.parametrize("stored", ["", "read,submit"])
def test_0011_gives_keys_without_scopes_read_and_submit(tmp_path, stored):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0007")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', 0)"))
        conn.execute(
            text(
                "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at, scopes) "
                "VALUES ('k', 't', 'h', 'p', 0, :scopes)"
            ),
            {"scopes": stored},
        )
    command.upgrade(alembic_config(url), "head")
    with get_engine(url).connect() as conn:
        row = conn.execute(text("SELECT scopes, last_used_at, expires_at FROM api_keys")).one()
        weight = conn.execute(text("SELECT weight, disabled_at FROM tenants")).one()
    assert tuple(row) == ("read,submit", None, None)
    assert tuple(weight) == (1, None)
    get_engine(url).dispose()
