"""Against a real API process, on both databases: the live list stream shows a key its
own tenant's jobs only (an admin key every tenant's, or one), follows a job to its end;
and a job's history (list, detail, errors) survives a restart of the API."""

from __future__ import annotations

import httpx
import orjson
import pytest

from core.db import write_session
from core.store.tenants import create_key
from tests.conftest import auth, make_key
from tests.test_dashboard_api import _run_all

pytestmark = pytest.mark.e2e


def _snapshots(stack, headers, n: int, params=None, until=None) -> list[dict]:
    """The first n `jobs` events of the list stream (or fewer, once until(data) holds)."""
    out: list[dict] = []
    with (
        httpx.Client(base_url=stack.url, timeout=httpx.Timeout(30.0)) as client,
        client.stream("GET", "/v1/dashboard/events", headers=headers, params=params) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                field, _, value = line.partition(": ")
                event[field] = value
                continue
            assert event["event"] == "jobs" and int(event["id"]) >= 1
            out.append(orjson.loads(event["data"]))
            event = {}
            if len(out) == n or (until and until(out[-1])):
                return out
    return out


def _ids(snapshot: dict) -> set[str]:
    return {j["id"] for j in snapshot["jobs"]}


def test_the_list_stream_is_isolated_and_follows_a_job_to_its_end(stack):
    db = stack.cfg.database_url
    alice, bob = auth(make_key(db, "alice")), auth(make_key(db, "bob"))
    with write_session(db) as session:
        admin = auth(create_key(session=session, tenant_name="ops", admin=True)[1])
    body = {"model": "tiny-embed", "inputs": [{"input": "a text"}]}
    a = stack.http.post("/v1/jobs", json=body, headers=alice).json()
    b = stack.http.post("/v1/jobs", json=body, headers=bob).json()

    (first,) = _snapshots(stack, alice, 1)
    assert _ids(first) == {a["id"]}
    job = first["jobs"][0]
    assert job["status"] == "queued" and job["counts"]["total"] == 1
    assert "params" not in job and job["tenant_id"] == a["tenant_id"]
    assert _ids(_snapshots(stack, bob, 1)[0]) == {b["id"]}
    assert _ids(_snapshots(stack, admin, 1)[0]) == {a["id"], b["id"]}
    assert _ids(_snapshots(stack, admin, 1, params={"tenant": "bob"})[0]) == {b["id"]}

    refused = stack.http.get("/v1/dashboard/events", params={"tenant": "bob"}, headers=alice)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert stack.http.get("/v1/dashboard/events", headers={"Authorization": ""}).status_code == 401

    # a cancelled job rides in the next snapshot with its end
    assert stack.http.post(f"/v1/jobs/{a['id']}/cancel", headers=alice).status_code == 200
    last = _snapshots(
        stack, alice, 20, until=lambda s: any(j["status"] == "cancelled" for j in s["jobs"])
    )[-1]
    assert [j["status"] for j in last["jobs"]] == ["cancelled"]


def test_history_survives_an_api_restart(stack, tiny_runner):
    db = stack.cfg.database_url
    alice = auth(make_key(db, "alice"))
    inputs = [{"custom_id": f"c{i}", "input": f"text {i}"} for i in range(450)]
    inputs[3]["input"] = "bad text"
    r = stack.http.post("/v1/jobs", json={"model": "tiny-embed", "inputs": inputs}, headers=alice)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert _run_all(stack.cfg, tiny_runner) == 3  # chunks run in this process, as a worker would

    def seen() -> tuple:
        listed = stack.http.get("/v1/jobs", headers=alice).json()["data"]
        detail = stack.http.get(f"/v1/jobs/{job_id}/detail", headers=alice).json()
        errors = stack.http.get(f"/v1/jobs/{job_id}/errors", headers=alice).json()
        return (
            [(j["id"], j["status"], j["counts"]) for j in listed],
            detail["chunk_states"],
            detail["throughput"],
            detail["usage"],
            [(g["code"], g["count"]) for g in errors["groups"]],
        )

    before = seen()
    assert before[0] == [
        (job_id, "completed", {"total": 450, "completed": 449, "failed": 1, "cancelled": 0})
    ]
    assert sum(p["items"] for p in before[2]["points"]) == 450
    assert before[4] == [("bad_input", 1)]
    old = stack.api
    stack.close()
    assert old.poll() is not None  # the API process is gone
    stack.http = httpx.Client(base_url=stack.url, timeout=60)
    stack.start_api()
    assert stack.api is not old
    assert seen() == before
