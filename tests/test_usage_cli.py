"""`sluice usage` and the client's usage_page on the in-process API, on both databases: pages
followed to the end or to --limit, and a table with each tenant and the totals."""

from __future__ import annotations

import io

from rich.console import Console

from cli.client import Client
from cli.usage_command import device_time, usage_table
from tests.test_usage_api import _seed, admin  # noqa: F401 - a fixture


def test_the_client_follows_pages_and_the_table_shows_totals(cfg, api, admin):  # noqa: F811
    for n in range(5):
        _seed(cfg, f"t{n}", f"job_{n}", 1000 * (n + 1), device="cuda" if n % 2 else "cpu")
    key = admin["Authorization"].removeprefix("Bearer ")
    client = Client(base_url=str(api.base_url), api_key=key, http_client=api)
    page = client.api.usage_page(group_by="job", limit=2)
    assert len(page["data"]) == 2 and page["has_more"] and page["totals"]["items"] == 15000
    rows, totals = client.usage(start=None, end=None, group_by="job", tenant=None, limit=100)
    assert sorted(r["items"] for r in rows) == [1000, 2000, 3000, 4000, 5000]
    assert totals["device_seconds"] == {"cpu": 1.5, "cuda": 1.0}
    few, _ = client.usage(start=None, end=None, group_by="job", tenant=None, limit=3)
    assert few == rows[:3]
    one, _ = client.usage(start=None, end=None, group_by="model", tenant="t4", limit=10)
    assert [(r["model"], r["items"]) for r in one] == [("m", 5000)]

    out = io.StringIO()
    Console(file=out, width=200).print(usage_table(rows, totals, "job"))
    text = out.getvalue()
    assert "TENANT" in text and "job_4" in text and "5,000" in text
    assert "15,000" in text and "cpu 1.5s, cuda 1.0s" in text
    assert device_time({}) == "-"


def test_the_async_client_reads_the_same_page(cfg, api, admin):  # noqa: F811
    import asyncio

    import httpx
    from sluice_client import AsyncClient

    _seed(cfg, "t0", "job_0", 7)
    key = admin["Authorization"].removeprefix("Bearer ")

    async def read() -> dict:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport) as http:
            client = AsyncClient("http://testserver", key, http_client=http)
            return await client.usage_page(group_by="model", tenant="t0")

    page = asyncio.run(read())
    assert [(r["model"], r["items"]) for r in page["data"]] == [("m", 7)]
