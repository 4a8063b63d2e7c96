"""`sluice usage`: what a tenant used over a range of UTC days, by day, model or job, as a
table with the range's totals, or the API's JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from cli.app import app, err
from cli.tables import stdout_console

KEYS = {"day": "day", "model": "model", "job": "job_id"}
COUNTS = (
    ("ITEMS", "items"),
    ("FAILED", "failed_items"),
    ("IN TOKENS", "input_tokens"),
    ("OUT TOKENS", "output_tokens"),
    ("IMAGES", "images"),
)


def device_time(by_kind: Mapping[str, float] | None) -> str:
    """Device-seconds by kind, e.g. `cuda 310.2s, cpu 12.5s`."""
    return ", ".join(f"{kind} {s:,.1f}s" for kind, s in sorted((by_kind or {}).items())) or "-"


def usage_table(
    rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any], group_by: str
) -> Table:
    """Usage groups, a row each (with their tenant where they are every tenant's), then
    the totals."""
    tenants = len({r.get("tenant_id") for r in rows}) > 1
    table = Table(box=None, header_style="bold", pad_edge=False, show_footer=True)
    if tenants:
        table.add_column("TENANT", footer="")
    table.add_column(group_by.upper(), footer="total")
    for title, name in COUNTS:
        table.add_column(title, justify="right", footer=f"{int(totals.get(name, 0)):,}")
    table.add_column("DEVICE TIME", footer=device_time(totals.get("device_seconds")))
    for row in rows:
        head = [str(row.get("tenant_id"))] if tenants else []
        table.add_row(
            *head,
            str(row.get(KEYS[group_by])),
            *(f"{int(row.get(name, 0)):,}" for _, name in COUNTS),
            device_time(row.get("device_seconds")),
        )
    return table


@app.command()
def usage(
    start: Annotated[
        str | None, typer.Option(help="First UTC day, YYYY-MM-DD (default: 29 days before end)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last UTC day, included (default: today)")] = None,
    by: Annotated[Literal["day", "model", "job"], typer.Option(help="Sum by")] = "day",
    tenant: Annotated[
        str | None, typer.Option(help="Admin keys: only this tenant (default: every tenant)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many rows")] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="The rows and totals as the API's JSON")
    ] = False,
) -> None:
    """Show your usage: items, failed items, tokens, images and device time (366 days at most)."""
    from cli.client import Client

    rows, totals = Client().usage(start=start, end=end, group_by=by, tenant=tenant, limit=limit)
    if as_json:
        print(json.dumps({"data": rows, "totals": totals}, indent=2))
    elif rows:
        stdout_console().print(usage_table(rows, totals, by))
    else:
        err.print("no usage in these days")
