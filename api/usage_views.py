"""GET /v1/usage as the API shows it: the response models (in the OpenAPI spec) and the
CSV rendering of a page, its text cells formula-safe as the results CSV's are."""

from __future__ import annotations

import csv
import io
from typing import Literal

from pydantic import BaseModel, Field

from api.result_formats import csv_text
from core.store.usage_report import GroupBy, UsageRow, UsageSums

KEY_FIELD = {"day": "day", "model": "model", "job": "job_id"}
COUNT_COLUMNS = (
    "items",
    "failed_items",
    "input_tokens",
    "output_tokens",
    "images",
    "cache_hits",
)


class UsageTotals(BaseModel):
    """Usage summed over a range."""

    items: int = Field(description="Items that finished with an output")
    failed_items: int = Field(description="Items that finished with an error")
    input_tokens: int = Field(description="Prompt tokens of the finished items")
    output_tokens: int = Field(description="Generated tokens of the finished items")
    images: int = Field(description="Finished items of image tasks (classify_image)")
    cache_hits: int = Field(description="Items served from the result cache (0 until it exists)")
    device_seconds: dict[str, float] = Field(
        description="Compute time by device kind (cpu, cuda, mps, ...); kinds with none "
        "are left out"
    )


class UsageRowOut(UsageTotals):
    """One group's usage: its tenant and its day, model or job (with the job's model)."""

    tenant_id: str
    day: str | None = Field(default=None, description="group_by=day: the UTC day")
    model: str | None = Field(default=None, description="group_by=model or job: the model")
    job_id: str | None = Field(default=None, description="group_by=job: the job")


class UsageList(BaseModel):
    """A page of usage groups in (tenant, key) order, and the totals of the whole range."""

    object: Literal["list"] = "list"
    start: str = Field(description="First day of the range (UTC), included")
    end: str = Field(description="Last day of the range (UTC), included")
    group_by: GroupBy
    tenant_id: str | None = Field(description="The tenant shown; null: every tenant (admin)")
    data: list[UsageRowOut]
    totals: UsageTotals = Field(description="Sums over the whole range, every page")
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


def totals_out(sums: UsageSums) -> UsageTotals:
    """Summed counters as the API shows them."""
    return UsageTotals(
        **{name: getattr(sums, name) for name in COUNT_COLUMNS},
        device_seconds=sums.device_seconds,
    )


def row_out(row: UsageRow, group_by: GroupBy) -> UsageRowOut:
    """One group as the API shows it."""
    out = UsageRowOut(tenant_id=row.tenant_id, **totals_out(row.sums).model_dump())
    setattr(out, KEY_FIELD[group_by], row.key)
    if row.model is not None:
        out.model = row.model
    return out


def usage_csv(rows: list[UsageRow], group_by: GroupBy, kinds: list[str]) -> str:
    """A page as CSV: tenant, the group's key (and a job's model), the counts, then
    device-seconds in all and per kind (one column per kind in the whole range)."""
    keys = ["job_id", "model"] if group_by == "job" else [KEY_FIELD[group_by]]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["tenant_id", *keys, *COUNT_COLUMNS, "device_seconds", *(f"{k}_seconds" for k in kinds)]
    )
    for row in rows:
        sums = row.sums
        head = [row.tenant_id, row.key, *([row.model or ""] if group_by == "job" else [])]
        seconds = [sums.device_seconds.get(k, 0.0) for k in kinds]
        writer.writerow(
            [
                *(csv_text(cell) for cell in head),
                *(getattr(sums, name) for name in COUNT_COLUMNS),
                round(sum(seconds), 6),
                *seconds,
            ]
        )
    return buf.getvalue()
