"""OpenAI batches in-process, on both databases: creation checks, the ingest of request
lines, chunks run through their endpoint's translation, and the finalize that writes
output and error files parsed with the official client's types; cancel and expiry."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import numpy as np
import orjson
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.batch import Batch
from openai.types.chat import ChatCompletion
from sqlalchemy import select, update

from core import states
from core.contracts.params import EmbedParams
from core.db import write_session
from core.store.dispatch import dispatch_chunks
from core.store.job_tasks import claim_job_tasks
from core.store.openai_batches import claim_finalizes, expire_overdue
from core.tables import Chunk, Job
from tests.conftest import worker_ctx
from worker.ingest import run_ingest
from worker.openai_finalize import run_finalize
from worker.run_chunk import execute_chunk

EMBED = "/v1/embeddings"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def request(cid: str, url: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def upload(api, headers, lines: list[bytes], purpose: str = "batch") -> str:
    data = b"\n".join(lines) + b"\n"
    r = api.post(
        "/v1/files", files={"file": ("b.jsonl", data)}, data={"purpose": purpose}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def create(api, headers, file_id: str, endpoint: str = EMBED, **extra) -> Any:
    return api.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            **extra,
        },
        headers=headers,
    )


def ingest(cfg, ctx, model: str) -> list[str]:
    with write_session(cfg.database_url) as s:
        claimed = claim_job_tasks(
            session=s,
            model=model,
            now=time.time(),
            lease=60,
            max_attempts=3,
            status=states.VALIDATING,
        )
    return [run_ingest(ctx, job_id, token) for job_id, token in claimed]


def run_chunks(cfg, ctx, model: str, limit: int = 10_000) -> int:
    """Run chunks as a worker would: those the ingest already queued, then the rest."""
    ran = 0
    while ran < limit:
        with write_session(cfg.database_url) as s:
            queued = s.execute(
                select(Chunk.id, Chunk.lease_token)
                .where(Chunk.model == model, Chunk.status == "queued")
                .order_by(Chunk.id)
                .limit(1)
            ).first()
            if queued is None:
                sent = dispatch_chunks(
                    session=s, model=model, limit=1, now=time.time(), queue_lease=60
                )
                queued = (sent[0].chunk_id, sent[0].token) if sent else None
        if queued is None:
            return ran
        if execute_chunk(ctx, *queued) == "done":
            ran += 1
    return ran


def finalize(cfg, ctx) -> list[str]:
    with write_session(cfg.database_url) as s:
        claimed = claim_finalizes(session=s, now=time.time(), lease=60, max_attempts=3)
    return [run_finalize(ctx, job_id, token) for job_id, token in claimed]


def retrieve(api, headers, batch_id: str) -> Batch:
    r = api.get(f"/v1/batches/{batch_id}", headers=headers)
    assert r.status_code == 200, r.text
    return Batch.model_validate(r.json())


def lines_of(api, headers, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    r = api.get(f"/v1/files/{file_id}/content", headers=headers)
    assert r.status_code == 200, r.text
    return [orjson.loads(x) for x in r.content.splitlines()]


def run_batch(cfg, api, headers, ctx, model, lines, endpoint=EMBED, **extra) -> Batch:
    r = create(api, headers, upload(api, headers, lines), endpoint, **extra)
    assert r.status_code == 200, r.text
    batch = Batch.model_validate(r.json())
    assert batch.status == "validating" and batch.id.startswith("batch_")
    ingest(cfg, ctx, model)
    run_chunks(cfg, ctx, model)
    assert retrieve(api, headers, batch.id).status == "finalizing"
    finalize(cfg, ctx)
    return retrieve(api, headers, batch.id)


def test_an_embeddings_batch_writes_openai_output(cfg, api, alice, tiny_runner):
    ctx = worker_ctx(cfg, tiny_runner)
    texts = [f"the {i} quick brown fox " * (1 + i % 5) for i in range(30)]
    lines = [
        request(f"r{i}", EMBED, {"model": "tiny-embed", "input": t}) for i, t in enumerate(texts)
    ]
    lines.append(request("many", EMBED, {"model": "tiny-embed", "input": texts[:3]}))
    lines.append(
        request(
            "b64", EMBED, {"model": "tiny-embed", "input": texts[0], "encoding_format": "base64"}
        )
    )
    lines.append(
        request("short", EMBED, {"model": "tiny-embed", "input": texts[1], "dimensions": 8})
    )
    batch = run_batch(cfg, api, alice, ctx, "tiny-embed", lines, metadata={"team": "search"})
    assert batch.status == "completed" and batch.error_file_id is None
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (33, 33)
    assert batch.completed_at and batch.finalizing_at and batch.in_progress_at
    assert batch.usage is not None and batch.usage.input_tokens > 0
    assert batch.metadata == {"team": "search"} and batch.model == "tiny-embed"
    out = lines_of(api, alice, batch.output_file_id)
    assert [x["custom_id"] for x in out] == [f"r{i}" for i in range(30)] + ["many", "b64", "short"]
    assert len({x["id"] for x in out}) == 33
    reference = tiny_runner.run(texts, EmbedParams())
    bodies = {}
    for x in out:
        assert x["error"] is None and x["response"]["status_code"] == 200
        bodies[x["custom_id"]] = x["response"]["body"]
    for i in range(30):
        body = CreateEmbeddingResponse.model_validate(bodies[f"r{i}"])
        assert body.model == "tiny-embed" and body.usage.prompt_tokens > 0
        np.testing.assert_allclose(body.data[0].embedding, reference[i].output, atol=1e-5)
    many = CreateEmbeddingResponse.model_validate(bodies["many"])
    assert [d.index for d in many.data] == [0, 1, 2]
    np.testing.assert_allclose(many.data[2].embedding, reference[2].output, atol=1e-5)
    raw = base64.b64decode(bodies["b64"]["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    np.testing.assert_allclose(decoded, reference[0].output, atol=1e-5)
    short = bodies["short"]["data"][0]["embedding"]
    assert len(short) == 8 and abs(np.linalg.norm(short) - 1) < 1e-4
    # The native view of the same job, and its file in the file list.
    job = api.get(f"/v1/jobs/{batch.id}", headers=alice).json()
    assert job["endpoint"] == EMBED and job["output_file_id"] == batch.output_file_id
    info = api.get(f"/v1/files/{batch.output_file_id}", headers=alice).json()
    assert info["purpose"] == "batch_output" and info["lines"] == 33
    listed = api.get("/v1/files", params={"purpose": "batch_output"}, headers=alice).json()
    assert [f["id"] for f in listed["data"]] == [batch.output_file_id]
    retry = api.post(f"/v1/jobs/{batch.id}/retry", headers=alice)
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "batch_retry_unsupported"


def test_invalid_requests_fail_validation_with_line_numbers(cfg, api, alice, tiny_runner):
    ctx = worker_ctx(cfg, tiny_runner)
    good = {"model": "tiny-embed", "input": "hello"}
    lines = [
        request("a", EMBED, good),
        request("b", CHAT, good),
        request("c", EMBED, {"model": "other", "input": "x"}),
        request("d", EMBED, {**good, "frequency_penalty": 1}),
        request("a", EMBED, good),
    ]
    r = create(api, alice, upload(api, alice, lines))
    assert r.status_code == 200, r.text
    assert ingest(cfg, ctx, "tiny-embed") == ["failed"]
    batch = retrieve(api, alice, r.json()["id"])
    assert batch.status == "failed" and batch.failed_at and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.data is not None
    found = {(e.line, e.code) for e in batch.errors.data}
    assert found == {
        (2, "mismatched_url"),
        (3, "mismatched_model"),
        (4, "unsupported_parameter"),
        (5, "duplicate_custom_id"),
    }


def test_skipped_requests_go_to_the_error_file(cfg, api, alice, tiny_runner):
    ctx = worker_ctx(cfg, tiny_runner)
    lines = [
        request("a", EMBED, {"model": "tiny-embed", "input": "hello"}),
        request("b", EMBED, {"model": "tiny-embed", "input": [1, 2, 3]}),
        request("c", EMBED, {"model": "tiny-embed", "input": "world"}),
    ]
    batch = run_batch(cfg, api, alice, ctx, "tiny-embed", lines, on_invalid="skip")
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
    assert [x["custom_id"] for x in lines_of(api, alice, batch.output_file_id)] == ["a", "c"]
    (err,) = lines_of(api, alice, batch.error_file_id)
    assert err["custom_id"] == "b" and err["error"]["code"] == "unsupported_input"
    assert err["response"]["status_code"] == 400
    assert err["response"]["body"]["error"]["code"] == "unsupported_input"


def test_creation_is_checked_before_anything_exists(cfg, api, alice, bob):
    line = request("a", EMBED, {"model": "tiny-embed", "input": "x"})
    fid = upload(api, alice, [line])

    def code(r) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]

    assert code(create(api, alice, fid, "/v1/responses")) == (400, "unsupported_endpoint")
    assert code(create(api, bob, fid)) == (404, "not_found")
    assert code(create(api, alice, upload(api, alice, [line], purpose="jobs"))) == (
        400,
        "invalid_file_purpose",
    )
    chat_line = request("a", CHAT, {"model": "tiny-embed", "messages": []})
    assert code(create(api, alice, upload(api, alice, [chat_line]), CHAT)) == (
        400,
        "model_task_mismatch",
    )
    unknown = request("a", EMBED, {"model": "gpt-4o", "input": "x"})
    assert code(create(api, alice, upload(api, alice, [unknown]))) == (400, "model_not_found")
    no_model = request("a", EMBED, {"input": "x"})
    r = create(api, alice, upload(api, alice, [no_model]))
    assert code(r) == (400, "invalid_batch_file") and r.json()["error"]["details"]["line"] == 1
    assert code(create(api, alice, fid, completion_window="8d")) == (
        400,
        "invalid_completion_window",
    )
    bad = create(api, alice, fid, completion_window="soon")  # 400 as OpenAI, not 422
    assert code(bad) == (400, "invalid_request") and bad.json()["error"]["param"]
    many = {f"k{i}": "v" for i in range(17)}
    assert code(create(api, alice, fid, metadata=many)) == (400, "invalid_input")
    assert (
        api.post("/v1/batches", json={}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert api.get("/v1/batches", headers=alice).json()["data"] == []  # nothing was created


def test_batches_list_newest_first_with_cursors(cfg, api, alice, bob):
    fid = upload(api, alice, [request("a", EMBED, {"model": "tiny-embed", "input": "x"})])
    ids = [create(api, alice, fid).json()["id"] for _ in range(3)]
    job = api.post(
        "/v1/jobs", json={"model": "tiny-embed", "inputs": [{"input": "x"}]}, headers=alice
    ).json()
    first = api.get("/v1/batches", params={"limit": 2}, headers=alice).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2] and first["has_more"]
    assert first["first_id"] == ids[2] and first["last_id"] == ids[1]
    rest = api.get("/v1/batches", params={"limit": 2, "after": first["last_id"]}, headers=alice)
    assert [b["id"] for b in rest.json()["data"]] == [ids[0]] and not rest.json()["has_more"]
    # /v1/jobs shows batches and jobs together, by creation time across their id prefixes.
    everything = api.get("/v1/jobs", headers=alice).json()["data"]
    assert [j["id"] for j in everything] == [job["id"], *ids[::-1]]
    assert api.get("/v1/batches", headers=bob).json()["data"] == []
    assert api.get(f"/v1/batches/{ids[0]}", headers=bob).status_code == 404
    assert api.get(f"/v1/batches/{job['id']}", headers=alice).status_code == 404


def test_cancel_keeps_what_finished_and_reports_the_rest(cfg, api, alice, tiny_runner):
    cfg = cfg.model_copy(update={"bucket_window_items": 50, "chunk_target_seconds": 1e-9})
    ctx = worker_ctx(cfg, tiny_runner)
    lines = [
        request(f"r{i}", EMBED, {"model": "tiny-embed", "input": f"text {i}"}) for i in range(500)
    ]
    r = create(api, alice, upload(api, alice, lines))
    batch_id = r.json()["id"]
    ingest(cfg, ctx, "tiny-embed")
    assert run_chunks(cfg, ctx, "tiny-embed", limit=1) == 1
    cancelled = api.post(f"/v1/batches/{batch_id}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"
    assert cancelled.json()["cancelling_at"] is not None
    assert (
        api.post(f"/v1/batches/{batch_id}/cancel", headers=alice).json()["status"] == "cancelling"
    )
    assert run_chunks(cfg, ctx, "tiny-embed") == 0  # nothing else starts
    assert finalize(cfg, ctx) == ["cancelled"]
    batch = retrieve(api, alice, batch_id)
    assert batch.status == "cancelled" and batch.cancelled_at
    out = lines_of(api, alice, batch.output_file_id)
    errors = lines_of(api, alice, batch.error_file_id)
    assert len(out) + len(errors) == 500 and len(out) > 0
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert sorted(x["custom_id"] for x in out + errors) == sorted(f"r{i}" for i in range(500))
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (len(out), len(errors))
    again = api.post(f"/v1/batches/{batch_id}/cancel", headers=alice)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_a_batch_past_its_window_expires_into_the_error_file(cfg, api, alice, tiny_runner):
    cfg = cfg.model_copy(update={"bucket_window_items": 50, "chunk_target_seconds": 1e-9})
    ctx = worker_ctx(cfg, tiny_runner)
    lines = [
        request(f"r{i}", EMBED, {"model": "tiny-embed", "input": f"t {i}"}) for i in range(1000)
    ]
    r = create(api, alice, upload(api, alice, lines), completion_window="1h")
    batch_id = r.json()["id"]
    assert r.json()["expires_at"] - r.json()["created_at"] in (3599, 3600, 3601)
    ingest(cfg, ctx, "tiny-embed")
    run_chunks(cfg, ctx, "tiny-embed", limit=2)
    with write_session(cfg.database_url) as s:
        assert expire_overdue(session=s, now=time.time()) == []  # not yet
        s.execute(update(Job).where(Job.id == batch_id).values(deadline_at=time.time() - 1))
    with write_session(cfg.database_url) as s:
        assert expire_overdue(session=s, now=time.time()) == [batch_id]
    assert retrieve(api, alice, batch_id).status == "finalizing"
    assert finalize(cfg, ctx) == ["expired"]
    batch = retrieve(api, alice, batch_id)
    assert batch.status == "expired" and batch.expired_at and batch.cancelled_at is None
    out = lines_of(api, alice, batch.output_file_id)
    errors = lines_of(api, alice, batch.error_file_id)
    assert len(out) == 400 and len(errors) == 600  # two chunks of 200 ran
    assert all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in errors)
    assert api.post(f"/v1/batches/{batch_id}/cancel", headers=alice).status_code == 409


def test_only_a_batch_has_a_window_plain_jobs_never_expire(cfg, api, alice):
    """`expired` (and so a `job.expired` event) is a batch's ending alone: plain jobs,
    inline or from a file, have no completion window, so the expiry sweep never stops
    them, however late it runs (their expires_at is retention, which deletes them)."""
    items = [{"input": "a"}, {"input": "b"}]
    inline = api.post("/v1/jobs", json={"model": "tiny-embed", "inputs": items}, headers=alice)
    assert inline.status_code == 201, inline.text
    file_id = upload(api, alice, [b'{"input": "c"}'], purpose="jobs")
    from_file = api.post(
        "/v1/jobs", json={"model": "tiny-embed", "input_file_id": file_id}, headers=alice
    )
    assert from_file.status_code == 201, from_file.text
    batch_line = request("r", EMBED, {"model": "tiny-embed", "input": "d"})
    batch_id = create(api, alice, upload(api, alice, [batch_line])).json()["id"]
    ids = [inline.json()["id"], from_file.json()["id"]]
    with write_session(cfg.database_url) as s:
        windows = {i: at for i, at in s.execute(select(Job.id, Job.deadline_at))}
        assert [windows[i] for i in ids] == [None, None] and windows[batch_id] is not None
        assert expire_overdue(session=s, now=time.time() + 10 * 365 * 86400) == [batch_id]
    statuses = [api.get(f"/v1/jobs/{i}", headers=alice).json()["status"] for i in ids]
    assert "expired" not in statuses and all(st in ("queued", "validating") for st in statuses)


@pytest.fixture(scope="module")
def causal_runner(registry_file):
    from core.contracts.spec import load_registry
    from models.generate import GenerateRunner

    return GenerateRunner(load_registry(registry_file)["tiny-causal"])


def _gen_ctx(cfg, runner):
    ctx = worker_ctx(cfg, runner)
    ctx.runners = {"tiny-causal": runner}
    return ctx


def test_chat_and_completions_batches(cfg, api, alice, causal_runner):
    ctx = _gen_ctx(cfg, causal_runner)
    chat = [
        request(
            f"c{i}",
            CHAT,
            {
                "model": "tiny-causal",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": f"question {i} " * (1 + i % 4)},
                ],
                "max_tokens": 3 + i % 5,
                "temperature": 0.8 if i % 2 else 0,
                "seed": 7,
            },
        )
        for i in range(12)
    ]
    # The same sampled request twice: the same seed gives the same text.
    chat.append(request("twin", CHAT, orjson.loads(chat[1])["body"]))
    batch = run_batch(cfg, api, alice, ctx, "tiny-causal", chat, CHAT)
    assert batch.status == "completed", batch
    out = {x["custom_id"]: x for x in lines_of(api, alice, batch.output_file_id)}
    for i in range(12):
        body = ChatCompletion.model_validate(out[f"c{i}"]["response"]["body"])
        assert body.object == "chat.completion" and body.model == "tiny-causal"
        assert body.choices[0].message.role == "assistant"
        assert body.usage is not None and 0 < body.usage.completion_tokens <= 3 + i % 5
        assert body.choices[0].finish_reason in ("stop", "length")
    twin = out["twin"]["response"]["body"]["choices"][0]["message"]["content"]
    assert twin == out["c1"]["response"]["body"]["choices"][0]["message"]["content"]
    assert batch.usage is not None and batch.usage.output_tokens > 0

    prompts = [
        request(f"p{i}", COMPLETIONS, {"model": "tiny-causal", "prompt": f"once upon {i}"})
        for i in range(5)
    ]
    batch = run_batch(cfg, api, alice, ctx, "tiny-causal", prompts, COMPLETIONS)
    assert batch.status == "completed"
    for x in lines_of(api, alice, batch.output_file_id):
        body = Completion.model_validate(x["response"]["body"])
        assert body.object == "text_completion" and body.usage is not None
        assert body.usage.completion_tokens <= 16  # OpenAI's default max_tokens


def test_a_finalize_that_lost_its_lease_keeps_nothing(cfg, api, alice, tiny_runner, monkeypatch):
    import worker.openai_finalize as finalize_mod

    ctx = worker_ctx(cfg, tiny_runner)
    lines = [request(f"r{i}", EMBED, {"model": "tiny-embed", "input": f"t {i}"}) for i in range(20)]
    r = create(api, alice, upload(api, alice, lines))
    batch_id = r.json()["id"]
    ingest(cfg, ctx, "tiny-embed")
    run_chunks(cfg, ctx, "tiny-embed")
    with write_session(cfg.database_url) as s:
        ((job_id, token),) = claim_finalizes(session=s, now=time.time(), lease=60, max_attempts=3)
    assert run_finalize(ctx, job_id, "not-the-token") == "not_held"
    # Another finalize took over while this one wrote: its files are thrown away.
    monkeypatch.setattr(finalize_mod, "finish_finalize", lambda **_: False)
    assert run_finalize(ctx, job_id, token) == "lost"
    listed = api.get("/v1/files", params={"purpose": "batch_output"}, headers=alice).json()
    assert listed["data"] == []
    assert retrieve(api, alice, batch_id).status == "finalizing"
    monkeypatch.undo()
    with write_session(cfg.database_url) as s:  # its lease lapses; the next one finishes
        claimed = claim_finalizes(session=s, now=time.time() + 3600, lease=60, max_attempts=3)
    assert [run_finalize(ctx, j, t) for j, t in claimed] == ["completed"]
    batch = retrieve(api, alice, batch_id)
    assert batch.status == "completed"
    assert len(lines_of(api, alice, batch.output_file_id)) == 20
