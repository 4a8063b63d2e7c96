"""Weighted fair share end to end: two tenants of weights 3 and 1, one worker, PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from core.db import read_session, write_session
from core.store.tenants import create_key
from core.tables import Chunk
from tests.conftest import auth, make_key
from tests.stack import TERMINAL

ITEMS = 40 * 256  # at least forty chunks each at tiny-embed's chunk size


def _submit(stack, key: str, name: str) -> str:
    inputs = [{"custom_id": f"{name}-{i}", "input": f"{name} text {i}"} for i in range(ITEMS)]
    r = stack.http.post(
        "/v1/jobs", json={"model": "tiny-embed", "inputs": inputs}, headers=auth(key)
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _wait(stack, job_id: str, key: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.url, headers=auth(key), timeout=30) as http:
        while time.monotonic() < deadline:
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()
            if job["status"] in TERMINAL:
                return job
    raise TimeoutError(f"job {job_id} stuck\n{stack.log_tail(0)}")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_weights_share_one_worker_three_to_one(stack):
    with write_session(stack.cfg.database_url) as session:
        admin = create_key(session=session, tenant_name="ops", admin=True)[1]
    heavy_key = make_key(stack.cfg.database_url, "heavy")
    light_key = make_key(stack.cfg.database_url, "light")
    r = stack.http.patch("/v1/admin/tenants/heavy", json={"weight": 3}, headers=auth(admin))
    assert r.status_code == 200 and r.json()["weight"] == 3, r.text
    heavy = _submit(stack, heavy_key, "heavy")
    light = _submit(stack, light_key, "light")
    stack.start_worker("tiny-embed")
    for job_id, key in ((heavy, heavy_key), (light, light_key)):
        job = _wait(stack, job_id, key)
        assert job["status"] == "completed" and job["counts"]["completed"] == ITEMS
    with read_session(stack.cfg.database_url) as s:
        order = [
            job_id
            for job_id, _ in s.execute(
                select(Chunk.job_id, Chunk.started_at).order_by(Chunk.started_at)
            )
        ]
    assert len(order) >= 80 and set(order) == {heavy, light}
    # While both were backlogged (until heavy's last chunk), three to one.
    contended = order[: [i for i, j in enumerate(order) if j == heavy][-1] + 1]
    share = contended.count(heavy) / contended.count(light)
    assert 2.5 <= share <= 3.5, (share, order)
