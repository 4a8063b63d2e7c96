"""The dashboard's usage view in a real headless Chromium on a real API: a tenant's totals,
its usage by model and by day, and another tenant's usage nowhere on its page."""

from __future__ import annotations

import time

import pytest

from core.db import write_session
from core.store.tenants import get_or_create_tenant
from core.store.usage import UsageDelta, add_usage, usage_day
from tests.test_dashboard_browser import chromium_path  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e


def _seed(db: str, tenant: str, model: str, items: int, device: str) -> None:
    with write_session(db) as s:
        add_usage(
            session=s,
            tenant_id=get_or_create_tenant(session=s, name=tenant).id,
            model=model,
            job_id=f"job_{tenant}_{model}",
            device=device,
            now=time.time(),
            delta=UsageDelta(items=items, input_tokens=10 * items, device_seconds=90.0),
        )


def test_the_usage_view_shows_the_tenants_own_usage(stack, chromium_path, db_url):  # noqa: F811
    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect, sync_playwright

    db = stack.cfg.database_url
    _seed(db, "e2e", "model-a", 1200, "cuda")
    _seed(db, "e2e", "model-b", 34, "cpu")
    _seed(db, "someone-else", "model-secret", 5, "cpu")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{stack.url}/dashboard")
            page.fill('input[name="api_key"]', stack.key)
            page.click('#signin button[type="submit"]')
            expect(page.locator("#nav")).to_be_visible()
            page.click('#nav a[data-view="usage"]')
            expect(page.locator("#usage-view")).to_be_visible()
            totals = page.locator("#usage-totals")
            expect(totals).to_contain_text("1,234")
            expect(totals).to_contain_text("12,340")
            expect(totals).to_contain_text("cpu 1m 30s, cuda 1m 30s")
            models = page.locator("#usage-models tbody tr")
            expect(models).to_have_count(2)
            expect(page.locator('#usage-models tr[data-key="model-a"]')).to_contain_text("1,200")
            days = page.locator("#usage-days tbody tr")
            expect(days).to_have_count(1)
            expect(days.first).to_contain_text(usage_day(time.time()))
            assert "model-secret" not in page.content()
            assert errors == []
        finally:
            browser.close()
