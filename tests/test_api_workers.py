"""`sluice api --workers N`: several API processes on one port, sharing the database and
Redis (each with its own key and status caches)."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from cli.processes import free_port, spawn, stop, wait_ready
from tests.conftest import make_key

pytestmark = pytest.mark.e2e


def test_two_api_processes_serve_one_port(cfg, tmp_path):
    if cfg.database_url.startswith("sqlite"):
        pytest.skip("one database is enough")
    port = free_port()
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": cfg.database_url,
        "SLUICE_REDIS_URL": cfg.redis_url,
        "SLUICE_REDIS_PREFIX": cfg.redis_prefix,
        "SLUICE_MODELS_FILE": str(cfg.models_file),
    }
    proc = spawn(["api", "--port", str(port), "--workers", "2"], env=env, log=tmp_path / "a.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) >= 2, (tmp_path / "a.log").read_text()
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'multi')}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            job = client.post(
                "/v1/jobs", json={"model": "tiny-embed", "inputs": [{"input": "x"}] * 3}
            ).json()
            seen = {client.get(f"/v1/jobs/{job['id']}").json()["status"] for _ in range(20)}
            assert seen == {"queued"}
            assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    finally:
        stop(proc)
