"""The official `openai` client against sluice: in-process for the error mapping, and
against a live API and worker for upload, create, poll, list, cancel and download, with
every output parsed by the client's own types."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from openai import OpenAI
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.batch import Batch
from openai.types.chat import ChatCompletion

from tests.conftest import worker_ctx
from tests.test_batches import ingest

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _req(cid: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


def _wait(client: OpenAI, batch_id: str, until=TERMINAL, timeout: float = 180) -> Batch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        time.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} stuck: {client.batches.retrieve(batch_id)}")


def _jsonl(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    # Bytes, split at newlines only: str.splitlines() also splits at U+2028 or NEL, which
    # JSON leaves unescaped inside generated text.
    return [orjson.loads(x) for x in client.files.content(file_id).content.splitlines()]


def test_errors_raise_the_clients_exceptions(cfg, api, alice, tiny_runner):
    """In-process (the test client is an httpx.Client): each error status maps to the
    exception the client raises for it."""
    cfg.jobs_per_minute = 2
    key = alice["Authorization"].removeprefix("Bearer ")
    client = OpenAI(base_url="http://testserver/v1", api_key=key, http_client=api, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        OpenAI(
            base_url="http://testserver/v1", api_key="sk-wrong", http_client=api, max_retries=0
        ).batches.list()
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.retrieve("batch_missing")
    assert missing.value.code == "not_found"
    line = _req("a", "/v1/embeddings", {"model": "tiny-embed", "input": "x"})
    up = client.files.create(file=("in.jsonl", orjson.dumps(line) + b"\n"), purpose="batch")
    assert up.purpose == "batch" and up.bytes > 0
    with pytest.raises(openai.BadRequestError) as bad:
        client.batches.create(
            input_file_id=up.id, endpoint="/v1/responses", completion_window="24h"
        )
    assert bad.value.code == "unsupported_endpoint" and bad.value.param == "endpoint"
    for _ in range(2):
        client.batches.create(
            input_file_id=up.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.RateLimitError) as limited:
        client.batches.create(
            input_file_id=up.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    assert int(limited.value.response.headers["Retry-After"]) > 0
    # A batch that failed validation (its second line names another model) cannot be
    # cancelled: 409.
    bad_file = (
        orjson.dumps(line)
        + b"\n"
        + orjson.dumps(_req("b", "/v1/embeddings", {"model": "tiny-causal", "input": "x"}))
    )
    cfg.jobs_per_minute = 100
    up = client.files.create(file=("bad.jsonl", bad_file), purpose="batch")
    failing = client.batches.create(
        input_file_id=up.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert sorted(ingest(cfg, worker_ctx(cfg, tiny_runner), "tiny-embed")) == [
        "failed",
        "queued",
        "queued",
    ]
    failed = client.batches.retrieve(failing.id)
    assert failed.status == "failed" and failed.errors is not None
    assert [(e.line, e.code) for e in failed.errors.data or []] == [(2, "mismatched_model")]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(failing.id)


@pytest.mark.e2e
def test_every_endpoint_through_the_official_client(cfg, stack, tmp_path):
    stack.start_worker("tiny-embed,tiny-causal")
    client = OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    texts = [f"sentence number {i} about rivers " * (1 + i % 3) for i in range(40)]
    embed = [
        _req(f"e{i}", "/v1/embeddings", {"model": "tiny-embed", "input": t})
        for i, t in enumerate(texts)
    ]
    chat = [
        _req(
            f"c{i}",
            "/v1/chat/completions",
            {
                "model": "tiny-causal",
                "messages": [{"role": "user", "content": t}],
                "max_tokens": 8,
                "temperature": 0,
            },
        )
        for i, t in enumerate(texts[:20])
    ]
    completions = [
        _req(f"p{i}", "/v1/completions", {"model": "tiny-causal", "prompt": t, "max_tokens": 5})
        for i, t in enumerate(texts[:20])
    ]
    types = {
        "/v1/embeddings": CreateEmbeddingResponse,
        "/v1/chat/completions": ChatCompletion,
        "/v1/completions": Completion,
    }
    ids = []
    for endpoint, rows in (
        ("/v1/embeddings", embed),
        ("/v1/chat/completions", chat),
        ("/v1/completions", completions),
    ):
        path = _lines(tmp_path / "requests.jsonl", rows)
        with path.open("rb") as fh:
            up = client.files.create(file=fh, purpose="batch")
        batch = client.batches.create(
            input_file_id=up.id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
            metadata={"endpoint": endpoint},
        )
        assert batch.status == "validating" and batch.input_file_id == up.id
        ids.append(batch.id)
        done = _wait(client, batch.id)
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (len(rows), len(rows))
        assert done.error_file_id is None and done.output_file_id is not None
        assert done.usage is not None and done.usage.input_tokens > 0
        out_file = client.files.retrieve(done.output_file_id)
        assert out_file.purpose == "batch_output"
        out = _jsonl(client, done.output_file_id)
        assert [x["custom_id"] for x in out] == [r["custom_id"] for r in rows]
        for x in out:
            assert x["error"] is None and x["response"]["status_code"] == 200
            body = types[endpoint].model_validate(x["response"]["body"])
            assert body.model == rows[0]["body"]["model"]
    # Listing pages newest first; the client's auto-pagination follows after/has_more.
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in client.batches.list(limit=1)] == ids[::-1]


@pytest.mark.e2e
def test_cancel_and_error_files_through_the_official_client(cfg, stack, tmp_path):
    if cfg.database_url.startswith("sqlite"):
        pytest.skip("one database is enough for this slow scenario")
    stack.start_worker("tiny-causal")
    client = OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    rows = [
        _req(
            f"c{i}",
            "/v1/chat/completions",
            {
                "model": "tiny-causal",
                "messages": [{"role": "user", "content": f"tell me about {i} " * (1 + i % 7)}],
                "max_tokens": 64,
            },
        )
        for i in range(4000)
    ]
    rows[3]["body"]["n"] = 2  # unsupported: skipped into the error file
    with _lines(tmp_path / "big.jsonl", rows).open("rb") as fh:
        up = client.files.create(file=fh, purpose="batch")
    batch = client.batches.create(
        input_file_id=up.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"on_invalid": "skip"},
    )
    running = _wait(client, batch.id, until={"in_progress"} | TERMINAL)
    assert running.status == "in_progress"
    deadline = time.monotonic() + 60
    while client.batches.retrieve(batch.id).request_counts.completed < 1:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done = _wait(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None
    out = _jsonl(client, done.output_file_id)
    errors = _jsonl(client, done.error_file_id)
    assert len(out) == done.request_counts.completed > 0
    assert len(errors) == done.request_counts.failed
    assert len(out) + len(errors) == 4000
    by_code: dict[str, int] = {}
    for e in errors:
        by_code[e["error"]["code"]] = by_code.get(e["error"]["code"], 0) + 1
    assert by_code.pop("unsupported_parameter") == 1
    assert set(by_code) == {"batch_cancelled"}
    for x in out:
        ChatCompletion.model_validate(x["response"]["body"])
