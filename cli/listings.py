"""`sluice jobs`, `files`, `batches` and `models`: tables of what a key can see, newest
first, or the API's objects with --json."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.app import app, err, program
from cli.tables import stdout_console

LIMIT_OPTION = typer.Option(min=1, max=1000, help="At most this many, newest first")
JSON_OPTION = typer.Option("--json", help="The API's JSON objects (a list) instead of a table")


def _show(rows: list[dict[str, Any]], as_json: bool, table: Any, empty: str) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
    elif rows:
        stdout_console().print(table)
    else:
        err.print(empty)


@app.command()
def jobs(
    status: Annotated[
        str | None, typer.Option(help="Only jobs of this status (e.g. in_progress, failed)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's jobs")] = None,
    limit: Annotated[int, LIMIT_OPTION] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List your jobs: status, items done, failed, when created and finished."""
    from cli.client import Client
    from cli.tables import job_list

    rows = Client().jobs(limit=limit, status=status, model=model)
    hint = f"no jobs{' like that' if status or model else ''} (`{program()} submit` makes one)"
    _show(rows, as_json, job_list(rows), hint)


@app.command()
def files(
    limit: Annotated[int, LIMIT_OPTION] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List your uploaded files: lines, size, purpose, when created and when they expire."""
    from cli.client import Client
    from cli.tables import file_list

    rows = Client().files(limit=limit)
    _show(rows, as_json, file_list(rows), "no files")


@app.command()
def batches(
    limit: Annotated[int, LIMIT_OPTION] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List your OpenAI-compatible batches: endpoint, model, status and requests done."""
    from cli.client import Client
    from cli.tables import batch_list

    rows = Client().batches(limit=limit)
    _show(rows, as_json, batch_list(rows), "no batches (POST /v1/batches makes one)")


@app.command()
def models(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """List the models the API serves: task, output, limits and live workers."""
    from cli.client import Client
    from cli.tables import model_list

    rows = Client().models()["data"]
    _show(rows, as_json, model_list(rows), "no models registered")
    idle = [m["id"] for m in rows if m.get("live_workers") == 0]
    if idle and not as_json:
        err.print(
            f"no live worker for {', '.join(idle)}: their jobs wait until one starts "
            f"(`{program()} worker --models NAME`)"
        )
