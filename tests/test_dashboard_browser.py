"""The dashboard in a real headless Chromium (Debian's package, driven by playwright), on a
real API and worker: sign in through the form, watch a running job's progress advance,
open its detail page (throughput chart, chunk states) and see it finish; cancel a running
job from its detail page (a button only its own tenant's key is offered, and a confirm
step) and see it end cancelled; screenshots go to the test's tmp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.db import write_session
from core.store.tenants import create_key

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent
FAULTS = {
    # the faults first (their sitecustomize patches the encoder), then this checkout: the
    # worker must run this code, not an installed copy the patch would import instead
    "PYTHONPATH": os.pathsep.join([str(TESTS / "faults"), str(TESTS.parent)]),
    "SLUICE_TEST_FAULTS": "1",
    # every chunk of the watched job takes a second more: a 3,000-item job (15 chunks of
    # 200) lasts long enough for the page to see its progress move
    "SLUICE_TEST_SLOW_SECONDS": "1.0",
}


def _missing(what: str) -> None:
    """Skip without the browser locally; under CI=true that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed (apt-get install chromium; pip install playwright)")


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("Debian's chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright")
    return str(path)


def _admin_key(stack) -> str:
    with write_session(stack.cfg.database_url) as session:
        return create_key(session=session, tenant_name="ops", admin=True)[1]


def _progress(page, job_id: str) -> float:
    cell = page.locator(f'tr[data-job-id="{job_id}"] td.progress-cell')
    return float(cell.get_attribute("data-progress") or "nan")


def _open_job(page, job_id: str) -> None:
    """Go to a job's detail page, as its link in the list does."""
    page.evaluate("(id) => { location.hash = `#/jobs/${encodeURIComponent(id)}`; }", job_id)
    page.wait_for_function("(id) => document.getElementById('d-id').textContent === id", arg=job_id)


def test_the_dashboard_follows_a_running_job(stack, chromium_path, tmp_path, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect, sync_playwright

    stack.start_worker("tiny-embed", env=FAULTS)
    texts = [f"<<slow>> text number {i}" for i in range(3000)]
    for i in (10, 1500, 2999):  # three items the model cannot take: they fail alone
        texts[i] = f"<<slow>> <<raise>> text number {i}"
    job = stack.submit(texts, "tiny-embed")
    job_id = job["id"]
    stack.wait_until(job_id, lambda j: j["status"] == "in_progress", timeout=120)

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
            row = page.locator(f'tr[data-job-id="{job_id}"]')
            expect(row).to_be_visible()
            assert stack.key not in page.url
            assert page.evaluate("sessionStorage.getItem('sluice.api_key')") == stack.key
            assert page.input_value('input[name="api_key"]') == ""

            # two different progress values read from the page, pushed by the list stream
            first = _progress(page, job_id)
            assert first < 1, "the job ended before the page could watch it"
            page.wait_for_function(
                """([id, before]) => {
                    const cell = document.querySelector(`tr[data-job-id="${id}"] td.progress-cell`);
                    return cell && Number(cell.dataset.progress) > before;
                }""",
                arg=[job_id, first],
            )
            second = _progress(page, job_id)
            assert 0 <= first < second <= 1
            expect(row.locator(".badge")).to_have_text("in_progress")
            page.screenshot(path=str(tmp_path / "dashboard-jobs.png"), full_page=True)

            row.locator("a").click()
            assert page.url.endswith(f"#/jobs/{job_id}")
            expect(page.locator("#d-id")).to_have_text(job_id)
            expect(page.locator("#d-chart rect.bar").first).to_be_attached()
            expect(page.locator('#d-chunks tr[data-chunk-status="done"]')).to_be_visible()
            expect(page.locator("#d-downloads button")).to_have_count(4)
            expect(page.locator("#d-cancel")).to_be_visible()  # its own tenant's running job
            page.screenshot(path=str(tmp_path / "dashboard-detail-running.png"), full_page=True)

            # the detail page follows the job to its end on its own
            expect(page.locator("#d-status")).to_have_text("completed", timeout=180_000)
            expect(page.locator("#d-actions")).to_be_hidden()  # nothing left to cancel
            expect(page.locator('#d-chunks tr[data-chunk-status="done"] td').nth(1)).to_have_text(
                "15"
            )
            assert page.locator("#d-chart rect.bar").count() >= 2
            group = page.locator("#d-errors .error-group")
            expect(group).to_have_count(1)
            expect(group.locator(".count")).to_have_text("3 items")
            expect(group.locator("tbody tr")).to_have_count(3)
            expect(group).to_contain_text("item-1500")
            page.screenshot(path=str(tmp_path / "dashboard-detail.png"), full_page=True)

            # downloads are fetched with the key in the header and saved from a blob
            with page.expect_download() as download:
                page.click('#d-downloads button[data-format="jsonl"]')
            assert download.value.suggested_filename == f"{job_id}.jsonl"
            assert download.value.url.startswith("blob:")
            saved = tmp_path / "results.jsonl"
            download.value.save_as(str(saved))
            assert len(saved.read_bytes().splitlines()) == 3000

            page.click('#nav a[data-view="models"]')
            expect(page.locator('[data-model="tiny-embed"]').first).to_be_visible()
            page.screenshot(path=str(tmp_path / "dashboard-models.png"), full_page=True)

            page.click("#signout")
            expect(page.locator("#signin")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('sluice.api_key')") is None

            # an admin key sees every tenant's jobs, with their tenant
            page.fill('input[name="api_key"]', _admin_key(stack))
            page.click('#signin button[type="submit"]')
            page.click('#nav a[data-view="jobs"]')
            expect(row.locator("td.admin-only")).to_have_text(job["tenant_id"])
            expect(page.locator("#f-tenant")).to_be_visible()

            # a second job, to cancel while it runs
            slow = stack.submit([f"<<slow>> more text {i}" for i in range(6000)], "tiny-embed")
            stack.wait_until(slow["id"], lambda j: j["status"] == "in_progress", timeout=120)
            # the admin key reads it but may not write another tenant's job: no button
            _open_job(page, slow["id"])
            expect(page.locator("#d-status")).to_have_text("in_progress")
            expect(page.locator("#d-actions")).to_be_hidden()

            page.click("#signout")
            page.fill('input[name="api_key"]', stack.key)
            page.click('#signin button[type="submit"]')
            _open_job(page, slow["id"])
            expect(page.locator("#d-status")).to_have_text("in_progress")
            page.click("#d-cancel")
            expect(page.locator("#d-cancel-confirm")).to_be_visible()
            page.click("#d-cancel-no")  # the confirm step: declining changes nothing
            expect(page.locator("#d-cancel-confirm")).to_be_hidden()
            assert stack.job(slow["id"])["status"] == "in_progress"
            page.click("#d-cancel")
            with page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
                page.click("#d-cancel-yes")
            assert answer.value.status == 200
            assert answer.value.json()["status"] in ("cancelling", "cancelled")
            # cancelling, then cancelled once the running chunk stops: from the job's stream
            expect(page.locator("#d-status")).to_have_text("cancelled", timeout=60_000)
            expect(page.locator("#d-actions")).to_be_hidden()
            expect(page.locator("#d-cancel-note")).to_be_empty()  # the badge says it now
            page.screenshot(path=str(tmp_path / "dashboard-detail-cancelled.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    shots = ("jobs", "detail-running", "detail", "models", "detail-cancelled")
    for name in (f"dashboard-{shot}.png" for shot in shots):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert stack.job(job_id)["status"] == "completed"
    cancelled = stack.job(slow["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"]["completed"] + cancelled["counts"]["failed"] < 6000
