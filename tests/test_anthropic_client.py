"""The official `anthropic` client against sluice's Message Batches: in-process for the
error envelope, validation and tenant isolation; against a live API and worker for create
(mixing two models), poll, list, cancel, results (parsed by the client's own types) and
delete."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import orjson
import pytest
from anthropic import Anthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from core.db import write_session
from core.store.openai_batches import expire_overdue
from tests.conftest import make_key


def _request(cid: str, model: str, text: str, **params: Any) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "params": {
            "model": model,
            "max_tokens": 6,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def _wait_ended(client: Anthropic, batch_id: str, timeout: float = 180) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.2)
    raise TimeoutError(f"batch {batch_id} stuck: {client.messages.batches.retrieve(batch_id)}")


def test_errors_take_anthropics_envelope(cfg, api, alice, bob):
    """x-api-key or Bearer; every refusal {"type": "error", "error": {type, message}}, a
    bad request naming its index, nothing written; another tenant's batch is missing."""
    key = alice["Authorization"].removeprefix("Bearer ")
    url = "/v1/messages/batches"
    missing = api.get(url, headers={"x-api-key": "sk-wrong"})
    assert missing.status_code == 401
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "authentication_error"
    # The same key works on sluice's own routes, whose envelope is unchanged.
    jobs = api.get("/v1/jobs/job_missing", headers={"x-api-key": key})
    assert jobs.status_code == 404 and jobs.json()["error"]["code"] == "not_found"
    good = _request("a", "tiny-causal", "hi")
    bad = _request("b", "tiny-causal", "hi", top_k=3)
    refused = api.post(url, headers={"x-api-key": key}, json={"requests": [good, good, bad]})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["details"] == {"index": 1} and error["code"] == "duplicate_custom_id"
    refused = api.post(url, headers={"x-api-key": key}, json={"requests": [good, bad]})
    assert refused.json()["error"]["param"] == "requests[1].params.top_k"
    embed = _request("c", "tiny-embed", "hi")
    refused = api.post(url, headers=alice, json={"requests": [embed]})
    assert refused.json()["error"]["code"] == "model_task_mismatch"
    assert api.post(url, headers=alice, json={"requests": []}).status_code == 400
    assert api.post(url, headers=alice, json={"nope": 1}).status_code == 400
    assert api.get(url, headers=alice).json()["data"] == []  # nothing was written
    created = api.post(url, headers=alice, json={"requests": [good]})
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    mine = api.get(f"{url}/{batch_id}", headers=alice)
    assert mine.status_code == 200 and mine.json()["processing_status"] == "in_progress"
    theirs = api.get(f"{url}/{batch_id}", headers=bob)
    absent = api.get(f"{url}/msgbatch_missing", headers=bob)
    assert theirs.status_code == absent.status_code == 404
    assert theirs.json()["error"]["type"] == "not_found_error"
    assert theirs.json()["error"]["message"].replace(batch_id, "X") == absent.json()["error"][
        "message"
    ].replace("msgbatch_missing", "X")
    for method, path in (
        ("post", f"{url}/{batch_id}/cancel"),
        ("delete", f"{url}/{batch_id}"),
        ("get", f"{url}/{batch_id}/results"),
    ):
        assert getattr(api, method)(path, headers=bob).status_code == 404
    assert api.get(url, headers=bob).json()["data"] == []
    # Its job is not an OpenAI batch, and cannot be retried as a job.
    assert api.get("/v1/batches", headers=alice).json()["data"] == []
    (job_id,) = [j["id"] for j in api.get("/v1/jobs", headers=alice).json()["data"]]
    assert api.get(f"/v1/batches/{job_id}", headers=alice).status_code == 404
    assert api.get(f"/v1/batches/{job_id}/webhook_deliveries", headers=alice).status_code == 404
    retry = api.post(f"/v1/jobs/{job_id}/retry", headers=alice)
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "batch_retry_unsupported"
    cfg.jobs_per_minute = 2  # one more batch is allowed this minute, then 429
    assert api.post(url, headers=alice, json={"requests": [good]}).status_code == 200
    limited = api.post(url, headers=alice, json={"requests": [good]})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.e2e
def test_message_batches_through_the_official_client(cfg, stack):
    client = Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        Anthropic(base_url=stack.url, api_key="sk-wrong", max_retries=0).messages.batches.list()
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_missing")
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.batches.create(
            requests=[_request("a", "tiny-causal", "hi", top_k=3)]  # type: ignore[list-item]
        )
    assert "top_k" in refused.value.message
    other = Anthropic(base_url=stack.url, api_key=make_key(cfg.database_url, "x"), max_retries=0)

    # No worker yet: nothing runs, so a cancel ends the batch at once, every request canceled.
    waiting = client.messages.batches.create(
        requests=[_request(f"w{i}", "tiny-causal", f"wait {i}") for i in range(3)]  # type: ignore[misc]
    )
    assert waiting.processing_status == "in_progress" and waiting.id.startswith("msgbatch_")
    assert waiting.request_counts.processing == 3 and waiting.results_url is None
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(waiting.id)  # still processing
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.cancel(waiting.id)
    canceled = client.messages.batches.cancel(waiting.id)
    assert canceled.cancel_initiated_at is not None
    canceled = _wait_ended(client, waiting.id)
    assert canceled.request_counts.canceled == 3 and canceled.ended_at is not None
    again_canceled = client.messages.batches.cancel(waiting.id)  # ended: unchanged
    assert again_canceled.cancel_initiated_at == canceled.cancel_initiated_at
    results = list(client.messages.batches.results(waiting.id))
    assert [(r.custom_id, r.result.type) for r in results] == [
        (f"w{i}", "canceled") for i in range(3)
    ]

    stack.start_worker("tiny-causal,tiny-causal-b")
    requests = []
    for i in range(30):
        model = "tiny-causal" if i % 3 else "tiny-causal-b"  # interleaved: one job per model
        extra: dict[str, Any] = {"temperature": 0}
        if i == 4:
            extra["system"] = "Answer briefly."
        if i == 5:
            extra["stop_sequences"] = ["e", "a", "o", "i", "t"][:4]
        text = f"tell me about rivers number {i} " * (1 + i % 4)
        requests.append(_request(f"r{i}", model, text, max_tokens=4 + i % 5, **extra))
    too_long = _request("too-long", "tiny-causal", "words " * 400)  # past the model's length
    requests.append(too_long)
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.type == "message_batch" and batch.expires_at > batch.created_at
    done = _wait_ended(client, batch.id)
    counts = done.request_counts
    assert (counts.succeeded, counts.errored, counts.processing) == (30, 1, 0)
    assert done.results_url is not None and done.results_url.endswith(f"{batch.id}/results")
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == [r["custom_id"] for r in requests]
    for request, line in zip(requests[:30], results, strict=False):
        assert line.result.type == "succeeded", line
        message = line.result.message
        assert message.type == "message" and message.role == "assistant"
        assert message.model == request["params"]["model"]
        assert message.content[0].type == "text"
        assert message.stop_reason in ("end_turn", "max_tokens", "stop_sequence")
        assert message.usage.input_tokens > 0
        assert message.usage.output_tokens <= request["params"]["max_tokens"]
        if message.stop_reason == "stop_sequence":
            assert message.stop_sequence in request["params"]["stop_sequences"]
            assert message.stop_sequence not in message.content[0].text
    assert results[-1].result.type == "errored"
    assert results[-1].result.error.error.type == "invalid_request_error"
    # The same request run alone gives the same greedy text.
    again = client.messages.batches.create(requests=[requests[7]])  # type: ignore[list-item]
    _wait_ended(client, again.id)
    (alone,) = list(client.messages.batches.results(again.id))
    assert alone.result.type == "succeeded" and results[7].result.type == "succeeded"
    assert alone.result.message.content[0].text == results[7].result.message.content[0].text

    # Listing: newest first, paged by after_id (the client's auto-pagination) and before_id.
    ids = [again.id, batch.id, waiting.id]
    assert [b.id for b in client.messages.batches.list(limit=1)] == ids
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[:2] and page.has_more
    newer = client.messages.batches.list(limit=1, before_id=waiting.id)
    assert [b.id for b in newer.data] == [batch.id] and newer.has_more
    assert [b.id for b in other.messages.batches.list()] == []

    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert stack.http.get("/v1/jobs").json()["data"] and all(
        j["model"] != "tiny-causal-b" for j in stack.http.get("/v1/jobs").json()["data"]
    )


def test_requests_unrun_at_the_batch_expiry_are_expired(cfg, api, alice):
    """24 hours after creation (the housekeeper's expiry, run here a day ahead) the batch
    ends; what never ran is `expired`, counted and in the results, in request order."""
    url = "/v1/messages/batches"
    requests = [_request(f"r{i}", ("tiny-causal", "tiny-causal-b")[i % 2], "hi") for i in range(5)]
    created = api.post(url, headers=alice, json={"requests": requests}).json()
    assert created["request_counts"]["processing"] == 5
    with write_session(cfg.database_url) as session:
        assert expire_overdue(session=session, now=time.time() + 3600) == []  # not yet due
    with write_session(cfg.database_url) as session:
        assert len(expire_overdue(session=session, now=time.time() + 86400 + 1)) == 2
    ended = api.get(f"{url}/{created['id']}", headers=alice).json()
    assert ended["processing_status"] == "ended" and ended["ended_at"] is not None
    assert ended["request_counts"] == {
        "processing": 0,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 5,
    }
    results = api.get(f"{url}/{created['id']}/results", headers=alice)
    assert results.status_code == 200
    lines = [orjson.loads(x) for x in results.content.splitlines()]
    assert lines == [{"custom_id": f"r{i}", "result": {"type": "expired"}} for i in range(5)]
    for line in lines:
        MessageBatchIndividualResponse.model_validate(line)


def test_a_cancel_mid_run_keeps_what_ran_and_cancels_the_rest(cfg, api, alice, registry_file):
    """One chunk of one model's job runs (in-process, as a worker runs it), then the batch
    is cancelled: the results hold those requests' messages and `canceled` for the rest,
    in request order across both jobs, and the counts agree."""
    from core.contracts.spec import load_registry
    from models.generate import GenerateRunner
    from tests.conftest import worker_ctx
    from tests.test_batches import run_chunks

    url = "/v1/messages/batches"
    requests = [
        _request(f"r{i}", ("tiny-causal", "tiny-causal-b")[i % 3 == 0], f"river {i}", temperature=0)
        for i in range(120)
    ]
    created = api.post(url, headers=alice, json={"requests": requests}).json()
    runner = GenerateRunner(load_registry(registry_file)["tiny-causal"])
    ctx = worker_ctx(cfg, runner)
    ctx.runners = {"tiny-causal": runner}
    assert run_chunks(cfg, ctx, "tiny-causal", limit=1) == 1
    running = api.get(f"{url}/{created['id']}", headers=alice).json()
    counts = running["request_counts"]
    ran = counts["succeeded"] + counts["errored"]
    assert running["processing_status"] == "in_progress" and 0 < ran < 80  # live counts
    assert counts["processing"] == 120 - ran and running["results_url"] is None
    assert api.get(f"{url}/{created['id']}/results", headers=alice).status_code == 400
    cancelled = api.post(f"{url}/{created['id']}/cancel", headers=alice).json()
    assert cancelled["processing_status"] == "ended"  # nothing was running
    assert cancelled["request_counts"]["canceled"] == 120 - ran
    lines = [
        MessageBatchIndividualResponse.model_validate(orjson.loads(x))
        for x in api.get(f"{url}/{created['id']}/results", headers=alice).content.splitlines()
    ]
    assert [x.custom_id for x in lines] == [r["custom_id"] for r in requests]
    kinds = [x.result.type for x in lines]
    assert kinds.count("canceled") == 120 - ran
    assert kinds.count("succeeded") == counts["succeeded"]
    for request, line in zip(requests, lines, strict=True):
        if line.result.type == "succeeded":
            assert request["params"]["model"] == line.result.message.model == "tiny-causal"
