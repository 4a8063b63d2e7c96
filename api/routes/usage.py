"""GET /v1/usage: a tenant's usage over a range of UTC days by day, model or job, as JSON
or CSV; an admin key's, every tenant's or one named tenant's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api.deps import STRICT_QUERY, CallerDep, SessionDep, page_of
from api.json_route import OrjsonRoute
from api.routes.jobs import listing_owner
from api.schemas import ERROR_RESPONSES
from api.usage_params import decode_cursor, encode_cursor, usage_range
from api.usage_views import UsageList, row_out, totals_out, usage_csv
from core.store.usage_report import (
    GroupBy,
    UsageQuery,
    device_kinds,
    usage_rows,
    usage_totals,
)

router = APIRouter(
    prefix="/v1",
    tags=["account"],
    responses=ERROR_RESPONSES,
    dependencies=STRICT_QUERY,
    route_class=OrjsonRoute,
)
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
NEXT_CURSOR_HEADER = "X-Sluice-Next-Cursor"


@router.get(
    "/usage",
    response_model=UsageList,
    summary="Usage by day, model or job",
    responses=CSV_RESPONSE,
)
def usage(
    caller: CallerDep,
    session: SessionDep,
    start: Annotated[
        str | None,
        Query(max_length=10, description="First UTC day, YYYY-MM-DD (default: end - 29 days)"),
    ] = None,
    end: Annotated[
        str | None,
        Query(max_length=10, description="Last UTC day, YYYY-MM-DD, included (default: today)"),
    ] = None,
    group_by: Annotated[GroupBy, Query(description="Sum by day, model or job")] = "day",
    tenant: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Admin keys only: a tenant's id or name (omitted: every tenant's)",
        ),
    ] = None,
    fmt: Annotated[
        Literal["json", "csv"],
        Query(
            alias="format",
            description=f"csv: the page as CSV (next cursor in {NEXT_CURSOR_HEADER})",
        ),
    ] = "json",
    limit: Annotated[int, Query(ge=1, le=1000, description="Groups per page")] = 100,
    after: Annotated[
        str | None, Query(max_length=600, description="Cursor: a previous page's next_cursor")
    ] = None,
) -> UsageList | Response:
    """Items finished and failed, tokens in and out, images, device-seconds by device kind
    and cache hits, summed per group over at most 366 days; counted when the items
    finished (UTC), kept after their jobs expire. A page at a time in (tenant, key) order;
    `totals` sums the whole range."""
    first, last = usage_range(start, end, datetime.now(UTC).date())
    cursor = decode_cursor(after) if after is not None else None
    owner = listing_owner(caller, session, tenant)
    query = UsageQuery(start=first, end=last, group_by=group_by, tenant_id=owner)
    kinds = device_kinds(session=session, query=query)
    rows = usage_rows(session=session, query=query, kinds=kinds, limit=limit + 1, after=cursor)
    page = page_of(rows, limit)
    next_cursor = None
    if page.has_more and page.rows:
        next_cursor = encode_cursor(page.rows[-1].tenant_id, page.rows[-1].key)
    if fmt == "csv":
        headers = {"Content-Disposition": f'attachment; filename="usage-{first}-{last}.csv"'}
        if next_cursor is not None:
            headers[NEXT_CURSOR_HEADER] = next_cursor
        return Response(
            usage_csv(page.rows, group_by, kinds), media_type="text/csv", headers=headers
        )
    return UsageList(
        start=first,
        end=last,
        group_by=group_by,
        tenant_id=owner,
        data=[row_out(r, group_by) for r in page.rows],
        totals=totals_out(usage_totals(session=session, query=query, kinds=kinds)),
        has_more=page.has_more,
        next_cursor=next_cursor,
    )
