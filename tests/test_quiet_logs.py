"""What `sluice api` and `sluice worker` write: one start-up line each, no Alembic lines per
readiness check, none of Celery's banner or root warning; and the opt-in access log, which
never shows a key (live processes, as an operator runs them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.access_log import shown_target
from core.config import redacted_url
from tests.conftest import make_key
from tests.stack import TERMINAL, Stack


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///./sluice.db", "sqlite:///./sluice.db"),
        ("postgresql+psycopg://app:s3cret@db:5432/sluice", "postgresql+psycopg://app:***@db:5432/sluice"),
        ("postgresql+psycopg://app@db/sluice?password=s3cret", "postgresql+psycopg://app@db/sluice"),
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://default:s3cret@redis:6379/0", "redis://default:***@redis:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)  # fmt: skip
def test_urls_are_logged_without_passwords(url, shown):
    assert redacted_url(url) == shown


def test_only_query_values_the_api_takes_are_shown():
    got = shown_target("/v1/jobs", b"limit=5&api_key=sk-sluice-abc&token=x%0Ay&status=queued")
    assert got == "/v1/jobs?limit=5&api_key=***&token=***&status=queued"
    assert "\n" not in shown_target("/v1/jobs", b"wait=1%0Aforged")


@pytest.mark.e2e
def test_start_up_lines_and_an_access_log_without_keys(cfg, tmp_path: Path):
    key = make_key(cfg.database_url, "quiet")
    stack = Stack(cfg, tmp_path / "logs", key)
    stack.env["SLUICE_ACCESS_LOG"] = "true"
    try:
        stack.start_api()
        stack.start_worker("tiny-embed")
        for _ in range(5):
            assert stack.http.get("/readyz").status_code == 200
        job = stack.submit(["a key must never be logged"], "tiny-embed")
        stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
        secret = key.rsplit("-", 1)[-1]
        leaks = [
            stack.http.get(f"/v1/jobs?api_key={key}"),  # a key pasted into a query
            stack.http.get(f"/v1/jobs/{job['id']}?wait=0&token={secret}"),
            stack.http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}x"}),
        ]
        assert [r.status_code for r in leaks] == [400, 400, 401]
    finally:
        stack.close()
    api_log = (tmp_path / "logs" / "api.log").read_text()
    worker_log = (tmp_path / "logs" / "worker0.log").read_text()
    for text in (api_log, worker_log):
        assert key not in text and secret not in text
        assert "alembic" not in text
        assert "SecurityWarning" not in text and "superuser" not in text
    assert len(re.findall(r"sluice api ready \(pid \d+\): models .*tiny-embed", api_log)) == 1
    banner = re.findall(r"sluice worker \S+ ready: tiny-embed \(embed on cpu, float32\); "
                        r"queues sluice\.model\.tiny-embed", worker_log)  # fmt: skip
    assert len(banner) == 1
    assert "[tasks]" not in worker_log and "-------------- " not in worker_log
    assert "Loading weights" not in worker_log
    access = [line for line in api_log.splitlines() if "sluice.access" in line]
    assert any('"GET /readyz" 200' in line for line in access)
    assert any('"POST /v1/jobs" 201' in line and "tenant=ten_" in line for line in access)
    assert any('"GET /v1/jobs?api_key=***" 400' in line for line in access)
    assert any("token=***" in line for line in access)
    assert any('"GET /v1/jobs" 401' in line and "tenant=-" in line for line in access)
