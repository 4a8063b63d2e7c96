"""The API's /metrics and /v1/models/status in-process, on both databases and real Redis:
load gauges from the database and live heartbeats, request durations by route template,
cache lookups, the optional scrape token."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.http_metrics import route_template
from api.ttl_cache import TTLCache
from core.db import read_session
from core.tables import Chunk
from tests.conftest import auth, make_key, worker_ctx
from tests.prom import Exposition
from worker.housekeeper import Housekeeper

DURATION = "sluice_http_request_duration_seconds_count"


def scrape(api: TestClient, **headers: str) -> Exposition:
    r = api.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Exposition(r.text)


def submit(api: TestClient, headers: dict[str, str], n: int) -> dict:
    body = {"model": "tiny-embed", "inputs": [{"input": f"text {i}"} for i in range(n)]}
    r = api.post("/v1/jobs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_metrics_show_jobs_queue_and_workers_from_the_database_and_redis(
    cfg, api, alice, tiny_runner
):
    before = scrape(api)
    assert before.value("sluice_jobs", model="tiny-embed", status="queued") == 0
    assert before.value("sluice_workers", model="tiny-embed") == 0
    assert before.value("sluice_metrics_source_up", source="database") == 1
    assert before.value("sluice_metrics_source_up", source="redis") == 1
    jobs = [submit(api, alice, 450), submit(api, alice, 3)]
    with read_session(cfg.database_url) as s:
        chunks = s.scalar(select(func.count()).select_from(Chunk))
    assert chunks >= 3  # 450 items at chunk_size 200
    # A real heartbeat of a worker context serving tiny-embed.
    Housekeeper(worker_ctx(cfg, tiny_runner)).heartbeat(time.time())
    time.sleep(1.6)  # the load is read at most every 1.5 s
    after = scrape(api)
    assert after.value("sluice_jobs", model="tiny-embed", status="queued") == len(jobs)
    assert after.value("sluice_jobs", model="tiny-embed", status="completed") == 0
    assert after.value("sluice_queue_depth", model="tiny-embed") == chunks
    assert after.value("sluice_pending_items", model="tiny-embed") == 453
    assert after.value("sluice_chunks", model="tiny-embed", status="pending") == chunks
    assert after.value("sluice_workers", model="tiny-embed") == 1
    assert after.value("sluice_workers", model="tiny-classify") == 0


def test_request_durations_are_labelled_by_route_template_and_status(api, alice):
    job = submit(api, alice, 2)
    before = scrape(api)
    for _ in range(3):
        assert api.get(f"/v1/jobs/{job['id']}", headers=alice).status_code == 200
    assert api.get("/v1/jobs/job_nope", headers=alice).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 401  # refused before routing
    assert api.get("/no/such/path").status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}", params={"wait": 0.05}, headers=alice).is_success
    after = scrape(api)

    def delta(**labels: str) -> float:
        return after.value(DURATION, **labels) - before.value(DURATION, **labels)

    route = "/v1/jobs/{job_id}"
    assert delta(method="GET", route=route, status="200") == 3
    assert delta(method="GET", route=route, status="404") == 1
    assert delta(method="GET", route=route, status="401") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert delta(method="GET", route=route + "?wait", status="200") == 1
    routes = {labels["route"] for labels in after.label_sets(DURATION)}
    assert job["id"] not in " ".join(routes)  # templates, never raw paths
    assert after.value(DURATION, route="/metrics") >= 1  # the first scrape, timed


def test_status_cache_lookups_are_counted(api, alice):
    job = submit(api, alice, 2)
    name = "sluice_cache_lookups_total"
    before = scrape(api)
    for _ in range(5):
        api.get(f"/v1/jobs/{job['id']}", headers=alice)
    # a long-poll listens to the same watch as the GETs (one read per interval for all)
    api.get(f"/v1/jobs/{job['id']}", params={"wait": 0.01}, headers=alice)
    after = scrape(api)
    hits = after.value(name, cache="job_status", result="hit") - before.value(
        name, cache="job_status", result="hit"
    )
    misses = after.value(name, cache="job_status", result="miss") - before.value(
        name, cache="job_status", result="miss"
    )
    assert hits + misses == 6 and misses >= 1, (hits, misses)
    assert after.value(name, cache="api_key", result="hit") > 0


def test_ttl_cache_reports_each_lookup():
    seen: list[bool] = []
    cache = TTLCache[int](60, on_lookup=seen.append)
    assert cache.get("a") is None
    cache.put("a", 1)
    assert cache.get("a") == 1
    expired = TTLCache[int](0.0, on_lookup=seen.append)
    expired.put("b", 2)
    time.sleep(0.01)
    assert expired.get("b") is None
    assert seen == [False, True, False]


def test_route_template_for_unrouted_scopes(api):
    app = api.app
    scope = {"type": "http", "method": "GET", "path": "/v1/files/file_x/content", "app": app}
    assert route_template(scope) == "/v1/files/{file_id}/content"
    assert route_template({**scope, "path": "/nope"}) == "unmatched"
    assert route_template({**scope, "method": "DELETE", "path": "/v1/jobs"}) == "/v1/jobs"
    job = {**scope, "path": "/v1/jobs/job_1"}
    assert route_template({**job, "query_string": b"wait=30"}) == "/v1/jobs/{job_id}?wait"
    assert route_template({**job, "query_string": b"wait=0"}) == "/v1/jobs/{job_id}"
    assert route_template({**job, "query_string": b"wait=soon"}) == "/v1/jobs/{job_id}"


def test_metrics_token_guards_the_scrape(cfg):
    guarded = cfg.model_copy(update={"metrics_token": "s3cret-scrape"})
    with TestClient(create_app(guarded)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers=auth("nope"))
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_metrics_token"
        assert client.get("/metrics", headers=auth("s3cret-scrape")).status_code == 200
        # an API key is no scrape token, and the token is no API key
        key = make_key(cfg.database_url, "scraper")
        assert client.get("/metrics", headers=auth(key)).status_code == 401
        assert client.get("/v1/models", headers=auth("s3cret-scrape")).status_code == 401


def test_models_status_lists_queue_and_live_workers(cfg, api, alice, bob, tiny_runner):
    assert api.get("/v1/models/status").status_code == 401
    job = submit(api, alice, 5)
    ctx = worker_ctx(cfg, tiny_runner)
    ctx.throughput.add("tiny-embed", 120, now=time.time())
    beat = time.time()
    Housekeeper(ctx).heartbeat(beat)
    time.sleep(1.6)
    r = api.get("/v1/models/status", headers=alice)
    assert r.status_code == 200, r.text
    body = r.json()
    by_model = {m["model"]: m for m in body["data"]}
    assert set(by_model) == set(api.app.state.registry)
    embed = by_model["tiny-embed"]
    assert (embed["task"], embed["queue_depth"], embed["pending_items"]) == ("embed", 1, 5)
    (worker,) = embed["workers"]
    assert worker["name"] == "test-worker" and worker["host"] == ctx.host
    assert (worker["device"], worker["dtype"]) == ("cpu", "float32")
    assert worker["items_per_second"] > 0
    assert abs(worker["last_heartbeat"] - beat) < 1e-3
    assert by_model["tiny-classify"]["workers"] == []
    # Nothing of any tenant: the same answer for every key, no job or tenant in it.
    assert api.get("/v1/models/status", headers=bob).json() == body
    assert job["id"] not in r.text and "alice" not in r.text
    assert api.get("/v1/models/status", params={"x": 1}, headers=alice).status_code == 400


def test_models_status_drops_a_worker_whose_heartbeat_stopped(cfg, api, alice, tiny_runner):
    Housekeeper(worker_ctx(cfg, tiny_runner)).heartbeat(time.time() - 60)
    body = api.get("/v1/models/status", headers=alice).json()
    assert {m["model"]: m["workers"] for m in body["data"]}["tiny-embed"] == []
