"""The HTTP API in-process, on both databases: auth, validation, isolation, cancel, polling."""

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.db import read_session
from core.errors import SchemaOutdated
from core.tables import Chunk, Job
from tests.conftest import auth, make_key


def _submit(api, headers, n=3, **extra):
    body = {
        "model": "tiny-embed",
        "inputs": [{"custom_id": f"c{i}", "input": f"text {i}"} for i in range(n)],
        **extra,
    }
    return api.post("/v1/jobs", json=body, headers=headers)


def _nothing_created(cfg):
    with read_session(cfg.database_url) as s:
        return (
            s.scalar(select(func.count()).select_from(Job)) == 0
            and s.scalar(select(func.count()).select_from(Chunk)) == 0
        )


def test_submit_and_get(api, alice):
    r = _submit(api, alice, n=450, priority=3, metadata={"team": "search"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["counts"] == {
        "total": 450,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert job["priority"] == 3 and job["metadata"] == {"team": "search"}
    assert job["params"] == {"normalize": True, "truncate": True}
    got = api.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert got["id"] == job["id"] and got["progress"] == 0.0


@pytest.mark.parametrize(
    "headers,code",
    [
        ({}, "missing_api_key"),
        (auth("sk-sluice-nope"), "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
    ],
)
def test_every_v1_route_needs_a_key(api, headers, code):
    for method, path in [
        ("get", "/v1/jobs"),
        ("post", "/v1/jobs"),
        ("get", "/v1/models"),
        ("get", "/v1/jobs/x"),
        ("get", "/v1/jobs/x/results"),
        ("post", "/v1/jobs/x/cancel"),
    ]:
        r = getattr(api, method)(path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == code


BAD = [
    ({"model": "nope", "inputs": [{"input": "x"}]}, 400, "unknown_model"),
    ({"model": "tiny-embed", "inputs": []}, 400, "empty_inputs"),
    ({"model": "tiny-embed", "inputs": [{"input": 5}]}, 400, "invalid_input"),
    ({"model": "tiny-embed", "inputs": [{"input": ["a"]}]}, 400, "invalid_input"),
    ({"model": "tiny-embed", "inputs": "abc"}, 422, "invalid_request"),
    ({"model": "tiny-embed", "inputs": [{"text": "x"}]}, 422, "invalid_request"),
    ({"model": "tiny-embed"}, 422, "invalid_request"),
    ({"model": "tiny-embed", "inputs": [{"input": "x"}], "priority": 12}, 422, "invalid_request"),
    (
        {"model": "tiny-embed", "inputs": [{"input": "x"}], "params": {"colour": 1}},
        400,
        "invalid_params",
    ),
    (
        {"model": "tiny-embed", "inputs": [{"input": "x"}], "params": {"dimensions": 0}},
        400,
        "invalid_params",
    ),
    (
        {
            "model": "tiny-embed",
            "inputs": [{"custom_id": "a", "input": "x"}, {"custom_id": "a", "input": "y"}],
        },
        400,
        "duplicate_custom_id",
    ),
    ({"model": "tiny-embed", "inputs": [{"input": "x" * 2001}]}, 400, "input_too_large"),
    ({"model": "tiny-embed", "inputs": [{"input": "x"}] * 11}, 413, "too_many_inputs"),
]


@pytest.mark.parametrize("body,status,code", BAD)
def test_bad_requests_get_4xx_and_create_nothing(cfg, body, status, code):
    small = cfg.model_copy(update={"max_inputs_per_job": 10, "max_input_chars": 2000})
    with TestClient(create_app(small)) as api:
        r = api.post("/v1/jobs", json=body, headers=auth(make_key(cfg.database_url, "a")))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]
    assert _nothing_created(cfg)


def test_bad_input_names_the_item(api, alice):
    r = api.post(
        "/v1/jobs",
        json={"model": "tiny-embed", "inputs": [{"input": "ok"}, {"input": {"x": 1}}]},
        headers=alice,
    )
    assert r.json()["error"]["param"] == "inputs[1].input"


def test_body_too_large_and_broken_json(cfg):
    small = cfg.model_copy(update={"max_body_bytes": 2048})
    key = auth(make_key(cfg.database_url, "a"))
    with TestClient(create_app(small)) as api:
        r = _submit(api, key, n=200)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = api.post(
            "/v1/jobs",
            content=b'{"model": "tiny',
            headers={**key, "Content-Type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = api.post(
            "/v1/jobs",
            content=b"\xff\xfe\x00garbage",
            headers={**key, "Content-Type": "application/json"},
        )
        assert r.status_code == 422
    assert _nothing_created(cfg)


def test_tenant_isolation(api, alice, bob):
    job_id = _submit(api, alice).json()["id"]
    for method, path in [
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/jobs/{job_id}/results"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
    ]:
        r = getattr(api, method)(path, headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert api.get("/v1/jobs", headers=bob).json()["data"] == []
    assert [j["id"] for j in api.get("/v1/jobs", headers=alice).json()["data"]] == [job_id]
    assert api.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "queued"


def test_list_is_newest_first_with_cursor(api, alice):
    ids = [_submit(api, alice, n=1).json()["id"] for _ in range(5)]
    seen, after = [], None
    while True:
        page = api.get(
            "/v1/jobs", params={"limit": 2, **({"after": after} if after else {})}, headers=alice
        ).json()
        seen += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert seen == ids[::-1]
    assert api.get("/v1/jobs", params={"limit": 0}, headers=alice).status_code == 422


def test_cancel_queued_job_and_empty_results(api, alice):
    job_id = _submit(api, alice, n=5).json()["id"]
    r = api.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["cancelled_at"] is not None
    res = api.get(f"/v1/jobs/{job_id}/results", headers=alice)
    assert res.status_code == 200 and res.content == b""
    assert res.headers["content-type"].startswith("application/x-ndjson")


def test_long_poll_wakes_on_change_and_times_out(api, alice, cfg):
    job_id = _submit(api, alice).json()["id"]
    started = time.monotonic()
    r = api.get(f"/v1/jobs/{job_id}", params={"wait": 1}, headers=alice)
    assert r.json()["status"] == "queued" and time.monotonic() - started >= 0.9

    def cancel_soon():
        time.sleep(0.5)
        api.post(f"/v1/jobs/{job_id}/cancel", headers=alice)

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    r = api.get(f"/v1/jobs/{job_id}", params={"wait": 30}, headers=alice)
    canceller.join()  # the cancel's answer may come after the long-poll's
    assert r.json()["status"] == "cancelled"
    assert api.get(f"/v1/jobs/{job_id}", params={"wait": 301}, headers=alice).status_code == 422


def test_rate_limit_answers_429_with_retry_after(cfg):
    limited = cfg.model_copy(update={"jobs_per_minute": 2})
    key = auth(make_key(cfg.database_url, "a"))
    with TestClient(create_app(limited)) as api:
        assert [_submit(api, key).status_code for _ in range(2)] == [201, 201]
        r = _submit(api, key)
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"] == {
        "quota": "submissions_per_minute",
        "limit": 2,
        "current": 2,
    }
    assert 1 <= int(r.headers["Retry-After"]) <= 61


def test_models_health_readiness_openapi(api, alice):
    models = {m["id"]: m for m in api.get("/v1/models", headers=alice).json()["data"]}
    assert models["all-minilm-l6-v2"]["dimensions"] == 384
    assert models["tiny-embed"]["task"] == "embed" and models["tiny-embed"]["live_workers"] == 0
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    spec = api.get("/openapi.json").json()
    assert "/v1/jobs/{job_id}/results" in spec["paths"]
    assert api.get("/v1/nowhere", headers=alice).json()["error"]["code"] == "not_found"


def test_readyz_reports_redis_down(cfg):
    broken = cfg.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken)) as api:
        r = api.get("/readyz")
    assert r.status_code == 503 and r.json()["redis"].startswith("error")


def test_api_refuses_to_start_on_unmigrated_database(tmp_path, cfg):
    fresh = cfg.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}"})
    with pytest.raises(SchemaOutdated, match="sluice migrate"), TestClient(create_app(fresh)):
        pass


@pytest.mark.parametrize("where", ["input", "custom_id", "metadata"])
def test_lone_surrogates_are_a_400_not_a_500(api, alice, cfg, where):
    item = {"custom_id": "ok", "input": "fine"}
    body = {"model": "tiny-embed", "inputs": [item]}
    if where == "metadata":
        body["metadata"] = {"k": "bad \ud800 half"}
    else:
        item[where] = "bad \ud800 half"
    raw = json.dumps(body)  # ASCII JSON with a "\\ud800" escape, as a client can send it
    assert "\\ud800" in raw
    r = api.post("/v1/jobs", content=raw, headers={**alice, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    assert _nothing_created(cfg)
    assert api.get("/v1/jobs", headers=alice).status_code == 200


def test_chunked_body_over_the_limit_is_413(cfg):
    small = cfg.model_copy(update={"max_body_bytes": 4096})
    key = auth(make_key(cfg.database_url, "a"))

    def body():
        yield b'{"model": "tiny-embed", "inputs": ['
        for i in range(500):
            yield b'{"input": "some text %d"},' % i
        yield b'{"input": "end"}]}'

    with TestClient(create_app(small)) as api:
        r = api.post(
            "/v1/jobs", content=body(), headers={**key, "Content-Type": "application/json"}
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert _nothing_created(cfg)


def test_dimensions_beyond_the_model_are_rejected(api, alice, cfg):
    r = _submit(api, alice, params={"dimensions": 33})  # the tiny encoder is 32 wide
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_params"
    assert _submit(api, alice, params={"dimensions": 32}).status_code == 201


def test_classify_jobs_take_texts_and_pairs(api, alice):
    body = {
        "model": "tiny-classify",
        "params": {"top_k": "all"},
        "inputs": [
            {"input": "plain text"},
            {"input": {"text": "premise", "text_pair": "hypothesis"}},
            {"input": {"text": "no pair"}},
        ],
    }
    r = api.post("/v1/jobs", json=body, headers=alice)
    assert r.status_code == 201, r.text
    assert r.json()["task"] == "classify" and r.json()["params"]["top_k"] == "all"


@pytest.mark.parametrize(
    "inp,params",
    [
        ({"text": 5}, {}),
        ({"txt": "a"}, {}),
        (["a", "b"], {}),
        ("ok", {"top_k": 0}),
        ("ok", {"top_k": "some"}),
        ("ok", {"normalize": True}),
    ],
)
def test_classify_bad_inputs_and_params(api, alice, cfg, inp, params):
    r = api.post(
        "/v1/jobs",
        json={"model": "tiny-classify", "inputs": [{"input": inp}], "params": params},
        headers=alice,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("invalid_input", "invalid_params")
    assert _nothing_created(cfg)


def test_models_list_labels_for_classifiers(api, alice):
    models = {m["id"]: m for m in api.get("/v1/models", headers=alice).json()["data"]}
    assert models["tiny-classify"]["labels"] == ["negative", "neutral", "positive"]
    assert models["tiny-classify"]["dimensions"] is None
    assert models["tiny-embed"]["labels"] is None and models["tiny-embed"]["dimensions"] == 32


@pytest.mark.parametrize(
    "params",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": 256},
        {"temperature": 2.5},
        {"top_p": 0},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stop": [""]},
        {"seed": -1},
        {"n": 2},
    ],
)
def test_generate_params_are_checked_before_a_job_exists(api, alice, cfg, params):
    r = api.post(
        "/v1/jobs",
        json={"model": "tiny-causal", "inputs": [{"input": "hi"}], "params": params},
        headers=alice,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_params", r.text
    assert _nothing_created(cfg)


def test_generate_job_accepts_prompts_and_chats(api, alice):
    inputs = [
        {"input": "a prompt"},
        {"input": {"prompt": "p", "seed": 4}},
        {"input": {"messages": [{"role": "user", "content": "hello"}]}},
    ]
    r = api.post(
        "/v1/jobs",
        json={
            "model": "tiny-causal",
            "inputs": inputs,
            "params": {"max_new_tokens": 8, "stop": "\n"},
        },
        headers=alice,
    )
    assert r.status_code == 201, r.text
    assert r.json()["params"]["stop"] == ["\n"]


def test_status_reads_are_paced_per_tenant(cfg, alice, bob):
    """Past its burst a tenant's status read waits its turn, or, too far off, gets 429
    with Retry-After; another tenant's reads are not held up by it."""
    paced = cfg.model_copy(
        update={
            "status_reads_per_second": 1,
            "status_read_burst": 2,
            "status_max_wait_seconds": 1.2,
        }
    )
    with TestClient(create_app(paced)) as api:
        job = _submit(api, alice).json()
        bob_job = _submit(api, bob).json()
        started = time.monotonic()
        codes = [api.get(f"/v1/jobs/{job['id']}", headers=alice).status_code for _ in range(3)]
        assert codes == [200, 200, 200]  # the burst, then one turn 1 s off, waited for
        assert time.monotonic() - started >= 0.9
        # Now alice's next turn is 1 s off; with one more queued ahead, 2 s off: past the
        # 1.2 s bound.
        answers = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(api.get(f"/v1/jobs/{job['id']}", headers=alice))
            )
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) == 1 and {r.status_code for r in answers} == {200, 429}
        assert refused[0].json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused[0].headers["Retry-After"]) >= 1
        assert api.get(f"/v1/jobs/{bob_job['id']}", headers=bob).status_code == 200
