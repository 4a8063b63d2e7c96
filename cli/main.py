"""`sluice`: migrate, run the API and workers, submit and follow jobs, manage keys.

Imports stay inside commands: `sluice worker --gpu N` must pin the GPU before torch loads,
and client commands should start instantly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli.admin_commands import audit_key_created
from cli.admin_commands import register as register_admin_commands
from cli.app import app, err, say_error

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
# Seconds `sluice api` lets running requests finish at shutdown before it cancels them.
SHUTDOWN_GRACE_SECONDS = 10


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (the only way the schema changes)."""
    from core.config import settings
    from core.db import migrate as run_migrations

    revision = run_migrations()
    err.print(f"database {settings.database_url.split('@')[-1]} is at revision {revision}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="API processes (default SLUICE_API_WORKERS, 1)"),
    ] = None,
) -> None:
    """Run the HTTP API (refuses to start on an out-of-date schema)."""
    import uvicorn

    from cli.metrics_dir import multiprocess_metrics
    from core.config import settings
    from core.db import check_schema

    check_schema()  # here, as one line; inside the server it is a traceback in the log
    _logging()
    processes = workers or settings.api_workers
    # Before the processes start: each one's metrics go to files there, summed on a scrape.
    with multiprocess_metrics(processes):
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host or settings.api_host,
            port=settings.api_port if port is None else port,
            workers=processes,
            log_level="info",
            access_log=False,
            # Event streams last as long as their jobs: at shutdown, what still runs after
            # this is cancelled (clients reconnect, streams with Last-Event-ID).
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            # uvicorn's own protocol with a deadline on request heads (slow clients).
            http="api.header_timeout:AutoHeaderDeadlineProtocol",
        )


@app.command()
def worker(
    gpu: Annotated[int | None, typer.Option(help="Pin to this GPU index")] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model names (default: all)")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (default: torch's choice)")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve Prometheus metrics on this port (default SLUICE_WORKER_METRICS_PORT; "
            "unset: none)",
        ),
    ] = None,
) -> None:
    """Run a worker: one process per GPU, models loaded once."""
    from core.config import settings
    from worker.main import start_worker

    _logging()
    start_worker(
        gpu=gpu,
        models=[m for m in models.split(",") if m] if models else None,
        threads=threads,
        metrics_port=metrics_port if metrics_port is not None else settings.worker_metrics_port,
    )


@app.command()
def workers(
    gpus: Annotated[str, typer.Option(help="GPU indices, e.g. 0,1, or `all`")],
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model names (default: all)")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per worker")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="The first worker's metrics port; the i-th GPU listed gets this + i "
            "(default SLUICE_WORKER_METRICS_PORT; unset: none)",
        ),
    ] = None,
) -> None:
    """Start and supervise one worker per GPU (restarted if it dies)."""
    from core.config import settings
    from worker.supervisor import (
        GpuSpecError,
        Supervisor,
        metrics_ports,
        parse_gpus,
        worker_command,
    )

    _logging()
    try:
        indices = parse_gpus(gpus)
        ports = metrics_ports(
            indices, metrics_port if metrics_port is not None else settings.worker_metrics_port
        )
    except GpuSpecError as exc:
        say_error(exc)
        raise typer.Exit(2) from exc
    supervisor = Supervisor({g: worker_command(g, models, threads, ports.get(g)) for g in indices})
    raise typer.Exit(supervisor.run())


LIMIT_DEFAULT = 5000


@app.command()
def demo(
    dataset: Annotated[
        Path | None, typer.Argument(help="A JSONL(.gz) file; default: the stdlib's docstrings")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many items")] = LIMIT_DEFAULT,
    model: Annotated[str, typer.Option(help="Model name")] = "all-minilm-l6-v2",
    port: Annotated[int | None, typer.Option(help="API port (default: 8000 if free)")] = 8000,
    logs: Annotated[Path, typer.Option(help="Where process logs go")] = Path(".sluice/logs"),
    images: Annotated[
        bool,
        typer.Option(
            help="An image job instead: a CNN trained on drawn shapes classifies --limit "
            "drawn images (default 2,000)"
        ),
    ] = False,
) -> None:
    """Run the main job end to end on the embedded default and print a summary."""
    from cli.demo import run_demo, run_image_demo

    if images:
        if dataset is not None:
            err.print("[red]--images draws its own images: give no dataset with it[/]")
            raise typer.Exit(2)
        count = 2000 if limit == LIMIT_DEFAULT else limit
        run_image_demo(limit=count, port=port, logs=logs, workdir=Path(".sluice/demo-images"))
        return
    run_demo(dataset=dataset, limit=limit, model=model, port=port, logs=logs)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new)")],
    admin: Annotated[
        bool, typer.Option("--admin", help="The key may also read every tenant's jobs")
    ] = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="read, submit or admin; repeat for several (default: read and submit)",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="A name to tell the key apart in `keys list`")
    ] = None,
    expires_in_days: Annotated[
        float | None,
        typer.Option(min=0.001, max=3650, help="The key stops working after this many days"),
    ] = None,
) -> None:
    """Create an API key for a tenant; the key is printed once and only its hash is kept."""
    import time

    from core.db import check_schema, write_session
    from core.errors import InvalidInput
    from core.store.tenants import (
        ADMIN_SCOPES,
        TENANT_SCOPES,
        create_key,
        normalize_scopes,
    )

    if admin and scope:
        err.print("[red]give --admin or --scope, not both (--scope admin is --admin)[/]")
        raise typer.Exit(2)
    if name is not None and len(name) > 200:
        err.print("[red]--name is at most 200 characters[/]")
        raise typer.Exit(2)
    given = ADMIN_SCOPES if admin else (scope or TENANT_SCOPES)
    try:
        scopes = normalize_scopes(given)  # the one check of scope names, as the API's
    except InvalidInput as exc:
        err.print(f"[red]{exc.code}: {exc.message}[/]")
        raise typer.Exit(2) from exc
    expires_at = None if expires_in_days is None else time.time() + expires_in_days * 86400
    check_schema()
    with write_session() as session:
        t, key = create_key(
            session=session,
            tenant_name=tenant,
            admin=admin,
            scopes=scope or None,
            expires_at=expires_at,
            name=name,
        )
        audit_key_created(session, key)
    kind = ("admin key" if "admin" in scopes else "key") + " with scopes " + ", ".join(scopes)
    if expires_in_days is not None:
        kind += f", expiring in {expires_in_days:g} days"
    err.print(f"tenant {t.name} ({t.id}), {kind}; store it now, it is not shown again:")
    print(key)


@tenants_app.command("webhook")
def tenants_webhook(
    tenant: Annotated[str, typer.Option(help="Tenant id or name")],
    url: Annotated[str | None, typer.Option(help="The default webhook URL")] = None,
    secret: Annotated[
        str | None, typer.Option(help="whsec_... (default: a new one, printed once)")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the default webhook")] = False,
) -> None:
    """Set the webhook of a tenant's jobs and batches that name none (or --clear it)."""
    from core.config import settings
    from core.db import check_schema, write_session
    from core.errors import InvalidInput
    from core.store.tenants import set_tenant_webhook
    from core.webhooks.signing import new_secret
    from core.webhooks.targets import check_webhook

    if clear == (url is not None):
        err.print("[red]give --url (and optionally --secret), or --clear[/]")
        raise typer.Exit(2)
    target = None
    if url is not None:
        try:
            target = check_webhook(
                url, secret or new_secret(), allow_private=settings.webhook_allow_private
            )
        except InvalidInput as exc:
            err.print(f"[red]{exc.code}: {exc.message}[/]")
            raise typer.Exit(2) from exc
    check_schema()
    with write_session() as session:
        found = set_tenant_webhook(session=session, id_or_name=tenant, webhook=target)
    if found is None:
        err.print(f"[red]no tenant {tenant!r}[/]")
        raise typer.Exit(1)
    if target is None:
        err.print(f"tenant {tenant}: default webhook removed")
        return
    err.print(f"tenant {tenant}: jobs without a webhook of their own now POST to {target.url}")
    if secret is None:
        err.print("its signing secret (store it now, it is not shown again):")
        print(target.secret)


# keys list | revoke | rotate, tenants create | list | set (cli/admin_commands.py).
register_admin_commands(keys_app, tenants_app)
# The client commands, registered on the same app (after the server ones, for --help).
import cli.job_commands  # noqa: E402
import cli.listings  # noqa: E402
import cli.submit  # noqa: E402
import cli.usage_command  # noqa: E402, F401

if __name__ == "__main__":
    app()
