"""`sluice keys list | revoke | rotate` and `sluice tenants create | list | set`: the
operator's administration, on the database directly (as `sluice keys create` is, so the
first admin key can be made with no API running); every change is in the audit log as
done by `cli`.

Imports stay inside the commands: the CLI starts instantly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cli.app import err, fail
from cli.humanize import relative_time
from cli.tables import stdout_console

QUOTA_HELP = (
    "KIND=N, or KIND=default to drop an override; kinds: queued_items, concurrent_jobs, "
    "stored_bytes, uploads_per_minute, submissions_per_minute (repeatable)"
)
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@contextmanager
def _store() -> Iterator[Any]:
    """A write session on the configured database; its errors as one or two lines."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.config import settings
    from core.db import check_schema, write_session
    from core.errors import SchemaOutdated, SluiceError

    try:
        check_schema()
        with write_session() as session:
            yield session
    except SchemaOutdated as exc:
        raise fail(exc.message) from exc
    except SluiceError as exc:
        code = 2 if exc.code.startswith("invalid") else 1
        raise fail(f"{exc.code}: {exc.message}", code=code) from exc
    except SQLAlchemyError as exc:
        where = settings.database_url.split("@")[-1]
        raise fail(
            f"the database {where} failed: {type(exc).__name__}",
            "check SLUICE_DATABASE_URL and that the database is up",
        ) from exc


def _when(at: float | None, empty: str = "-") -> str:
    """A time as a date (for what an operator acts on: expiries, revocations)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else empty


def _ago(at: float | None, empty: str) -> str:
    return relative_time(at) if at else empty


def _duration(text: str) -> float:
    """Seconds of `90`, `90s`, `15m`, `2h` or `7d`."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in SECONDS else text
    try:
        value = float(number) * SECONDS.get(unit, 1)
    except ValueError:
        value = -1.0
    if value < 0:
        raise fail(
            f"--grace {text!r}: give seconds, or a number with s, m, h or d (15m, 2h)", code=2
        )
    return value


def _quotas(pairs: list[str]) -> dict[str, int | None]:
    """--quota KIND=N|default pairs as overrides."""
    from core.store.tenant_admin import QUOTA_KINDS

    quotas: dict[str, int | None] = {}
    for pair in pairs:
        kind, _, value = pair.partition("=")
        if kind not in QUOTA_KINDS or not value:
            raise fail(f"--quota {pair!r}: give KIND=N or KIND=default", QUOTA_HELP, code=2)
        if value == "default":
            quotas[kind] = None
        elif value.isdigit():
            quotas[kind] = int(value)
        else:
            raise fail(f"--quota {pair!r}: N is a whole number of 0 or more", code=2)
    return quotas


def _tenant(session: Any, name: str) -> Any:
    from core.store.tenants import tenant_named

    tenant = tenant_named(session=session, id_or_name=name)
    if tenant is None:
        raise fail(f"no tenant {name!r}", "`sluice tenants list` shows them")
    return tenant


def _tenant_line(tenant: Any) -> str:
    from core.store.tenant_admin import quotas_of

    state = "disabled" if tenant.disabled_at else "enabled"
    set_quotas = {k: v for k, v in quotas_of(tenant).items() if v is not None}
    quotas = ", ".join(f"{k}={v}" for k, v in set_quotas.items()) or "defaults"
    return f"tenant {tenant.name} ({tenant.id}): {state}, weight {tenant.weight}, quotas {quotas}"


def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (id or name)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many")] = 100,
) -> None:
    """List API keys, newest first: prefix, scopes, status, created, last used, expiry."""
    from core.store.api_keys import key_status, list_keys
    from core.store.tenants import SCOPES, scopes_of

    now = time.time()
    with _store() as session:
        tenant_id = _tenant(session, tenant).id if tenant else None
        rows = list_keys(session=session, limit=limit, tenant_id=tenant_id)
    table = Table(
        "id", "tenant", "prefix", "scopes", "status", "created", "last used", "expires",
        box=box.SIMPLE_HEAD,
    )  # fmt: skip
    for key, name in rows:
        scopes = ",".join(s for s in SCOPES if s in scopes_of(key.scopes))
        table.add_row(
            key.id,
            name,
            key.prefix + "...",
            scopes,
            key_status(key, now),
            _ago(key.created_at, "-"),
            _ago(key.last_used_at, "never"),
            _when(key.expires_at, "never"),
        )
    stdout_console().print(table)


def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")]) -> None:
    """Revoke a key: every API process refuses it within 10 s."""
    from core.store.api_keys import revoke_key
    from core.store.audit import CLI

    with _store() as session:
        key = revoke_key(session=session, key_id=key_id, actor=CLI, now=time.time())
    if key is None:
        raise fail(f"no key {key_id!r}", "`sluice keys list` shows them")
    err.print(f"key {key.id} ({key.prefix}...) revoked at {_when(key.revoked_at)}")


def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")],
    grace: Annotated[
        str | None,
        typer.Option(help="How long the old key keeps working: 90s, 15m, 2h, 7d (default: a day)"),
    ] = None,
) -> None:
    """Print a new key in place of one; the old one works on for --grace."""
    from core.config import settings
    from core.store.api_keys import rotate_key
    from core.store.audit import CLI

    grace_seconds = settings.key_rotation_grace_seconds if grace is None else _duration(grace)
    with _store() as session:
        rotated = rotate_key(
            session=session, key_id=key_id, actor=CLI, now=time.time(), grace_seconds=grace_seconds
        )
    if rotated is None:
        raise fail(f"no key {key_id!r}", "`sluice keys list` shows them")
    new, secret, old = rotated
    err.print(f"key {old.id} works until {_when(old.expires_at)}; its replacement {new.id}")
    err.print("store it now, it is not shown again:")
    print(secret)


def tenants_create(
    name: Annotated[str, typer.Argument(help="Letters, digits, '.', '_' or '-'")],
    weight: Annotated[int, typer.Option(min=1, max=100, help="Share of dispatches")] = 1,
    quota: Annotated[list[str] | None, typer.Option(help=QUOTA_HELP)] = None,
) -> None:
    """Create a tenant (then `sluice keys create --tenant NAME` gives it a key)."""
    from core.store.audit import CLI
    from core.store.tenant_admin import create_tenant

    quotas = _quotas(quota or [])
    with _store() as session:
        tenant = create_tenant(
            session=session, name=name, weight=weight, quotas=quotas, actor=CLI, now=time.time()
        )
    err.print(_tenant_line(tenant))


def tenants_list() -> None:
    """List tenants by name: weight, state, quota overrides."""
    from core.store.tenant_admin import QUOTA_KINDS, list_tenants, quotas_of

    with _store() as session:
        tenants = list_tenants(session=session, limit=100_000)
    table = Table(
        "id", "name", "weight", "state", "created", "quota overrides", box=box.SIMPLE_HEAD
    )
    for t in tenants:
        quotas = quotas_of(t)
        table.add_row(
            t.id,
            t.name,
            str(t.weight),
            "disabled" if t.disabled_at else "enabled",
            _ago(t.created_at, "-"),
            ", ".join(f"{k}={quotas[k]}" for k in QUOTA_KINDS if quotas[k] is not None) or "-",
        )
    stdout_console().print(table)


def tenants_set(
    tenant: Annotated[str, typer.Argument(help="The tenant's id or name")],
    weight: Annotated[int | None, typer.Option(min=1, max=100, help="Share of dispatches")] = None,
    quota: Annotated[list[str] | None, typer.Option(help=QUOTA_HELP)] = None,
    disable: Annotated[
        bool, typer.Option("--disable", help="Refuse its keys; dispatch none of its work")
    ] = False,
    enable: Annotated[bool, typer.Option("--enable", help="Undo --disable")] = False,
) -> None:
    """Change a tenant's weight or quotas, or disable or enable it."""
    from core.store.audit import CLI
    from core.store.tenant_admin import set_tenant_disabled, update_tenant

    if disable and enable:
        raise fail("give --disable or --enable, not both", code=2)
    if weight is None and not quota and not (disable or enable):
        raise fail("nothing to change", "give --weight, --quota, --disable or --enable", code=2)
    quotas = _quotas(quota or [])
    now = time.time()
    with _store() as session:
        row = update_tenant(
            session=session, tenant=_tenant(session, tenant), weight=weight, quotas=quotas,
            actor=CLI, now=now,
        )  # fmt: skip
        if disable or enable:
            row = set_tenant_disabled(
                session=session, tenant=row, disabled=disable, actor=CLI, now=now
            )
    err.print(_tenant_line(row))


def audit_key_created(session: Any, secret: str) -> None:
    """Record a key `sluice keys create` made (in its transaction), as done by `cli`."""
    from sqlalchemy import select

    from core.store.api_keys import describe_key
    from core.store.audit import CLI, KEY_CREATE, record_event
    from core.store.tenants import hash_key
    from core.tables import ApiKey

    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    record_event(
        session=session,
        action=KEY_CREATE,
        actor=CLI,
        now=key.created_at,
        tenant_id=key.tenant_id,
        target_id=key.id,
        details=describe_key(key),
    )


def register(keys_app: typer.Typer, tenants_app: typer.Typer) -> None:
    """Add these commands to the `keys` and `tenants` groups."""
    commands: list[tuple[typer.Typer, str, Callable[..., None]]] = [
        (keys_app, "list", keys_list),
        (keys_app, "revoke", keys_revoke),
        (keys_app, "rotate", keys_rotate),
        (tenants_app, "create", tenants_create),
        (tenants_app, "list", tenants_list),
        (tenants_app, "set", tenants_set),
    ]
    for group, name, command in commands:
        group.command(name)(command)
