"""sluice_client against live processes (the real API and a worker): jobs from lists, files,
DataFrames and Arrow tables; waiting with progress; results in input order; tables; typed
errors with the server's codes; retries after Retry-After (through a fault proxy); and the
same path with AsyncClient."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sluice_client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)

from tests.conftest import make_key
from tests.fault_proxy import Fault, FaultProxy
from tests.stack import Stack
from tests.tiny_models import bench_texts

pytestmark = pytest.mark.e2e
MODEL = "tiny-embed"


@pytest.fixture
def sqlite_cfg(cfg):
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("the client only speaks HTTP; once on SQLite is enough")
    return cfg


@pytest.fixture
def live(sqlite_cfg, tmp_path: Path) -> Iterator[Stack]:
    """The API and a tiny-embed worker."""
    stack = Stack(sqlite_cfg, tmp_path / "logs", make_key(sqlite_cfg.database_url, "client"))
    stack.start_api()
    try:
        stack.start_worker(MODEL)
        yield stack
    finally:
        stack.close()


def _ids(lines: list[dict]) -> list[str | None]:
    return [x["custom_id"] for x in lines]


def _check_in_order(lines: list[dict], n: int) -> None:
    assert [x["index"] for x in lines] == list(range(n))
    assert all(len(x["output"]) == 32 for x in lines), lines[:2]


def test_jobs_from_every_kind_of_input(live: Stack, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    texts = bench_texts(300, seed=11)
    client = Client(live.url, live.key, inline_max_items=100)

    small = client.submit(MODEL, texts[:40], metadata={"via": "list"})
    assert small.status in ("queued", "in_progress") and small.data.get("input_file_id") is None
    stream = io.StringIO()
    assert small.wait(progress=True, stream=stream, timeout=120) is small
    assert small.status == "completed" and small.counts == {
        "total": 40,
        "completed": 40,
        "failed": 0,
        "cancelled": 0,
    }
    assert "completed" in stream.getvalue() and "40/40" in stream.getvalue()
    lines = list(small.results())
    _check_in_order(lines, 40)
    assert lines == list(live_results(live, small.id))  # equal to what the API serves

    # More than the inline limit: uploaded as a file, streamed from the generator.
    big = client.submit(MODEL, ({"custom_id": f"g{i}", "input": t} for i, t in enumerate(texts)))
    assert big.data["input_file_id"] and big.status == "validating"
    big.wait(timeout=120)
    lines = list(big.results())
    _check_in_order(lines, 300)
    assert _ids(lines) == [f"g{i}" for i in range(300)]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"custom_id": f"p{i}", "input": t}) + "\n" for i, t in enumerate(texts[:30])
        )
    )
    from_path = client.submit(MODEL, jsonl, priority=5).wait(timeout=120)
    assert from_path.data["priority"] == 5
    assert _ids(list(from_path.results())) == [f"p{i}" for i in range(30)]
    text_file = tmp_path / "in.txt"
    text_file.write_text("\n".join(texts[:12]) + "\n")
    from_text = client.submit(MODEL, str(text_file)).wait(timeout=120)
    assert from_text.counts["completed"] == 12

    frame = pd.DataFrame({"custom_id": [f"d{i}" for i in range(25)], "input": texts[:25]})
    from_frame = client.submit(MODEL, frame).wait(timeout=120)
    table = pa.table({"custom_id": [f"a{i}" for i in range(25)], "input": texts[25:50]})
    from_table = client.submit(MODEL, table, params={"dimensions": 8}).wait(timeout=120)
    assert _ids(list(from_frame.results())) == [f"d{i}" for i in range(25)]

    df = from_frame.to_pandas()
    assert list(df["custom_id"]) == [f"d{i}" for i in range(25)]
    assert list(df["index"]) == list(range(25)) and len(df["embedding"][0]) == 32
    arrow = from_table.to_arrow()
    assert arrow.column("custom_id").to_pylist() == [f"a{i}" for i in range(25)]
    assert arrow.schema.field("embedding").type.list_size == 8
    csv_path = from_table.download(tmp_path / "out.csv")
    assert csv_path.read_text().splitlines()[0].startswith("index,custom_id,embedding")

    listed = [job.id for job in client.list_jobs(page_size=2)]
    submitted = [small, big, from_path, from_text, from_frame, from_table]
    assert listed == [job.id for job in reversed(submitted)]  # newest first, across pages
    assert len(list(client.list_jobs(limit=3))) == 3
    client.close()


def live_results(stack: Stack, job_id: str) -> Iterator[dict]:
    for raw in stack.results(job_id):
        yield json.loads(raw)


def test_errors_carry_the_servers_codes(live: Stack, tmp_path: Path) -> None:
    client = Client(live.url, live.key)
    with pytest.raises(InvalidRequestError) as bad_model:
        client.submit("no-such-model", ["x"])
    assert (bad_model.value.status, bad_model.value.code) == (400, "unknown_model")
    with pytest.raises(InvalidRequestError) as empty:
        client.submit(MODEL, [])
    assert empty.value.code == "empty_inputs"
    with pytest.raises(AuthenticationError) as wrong_key:
        Client(live.url, "sk-wrong").get_job("job_x")
    assert (wrong_key.value.status, wrong_key.value.code) == (401, "invalid_api_key")
    with pytest.raises(NotFoundError) as missing:
        client.get_job("job_missing")
    assert (missing.value.status, missing.value.code) == (404, "not_found")

    job = client.submit(MODEL, ["short", "word " * 600], params={"truncate": False})
    other = Client(live.url, make_key(live.cfg.database_url, "someone-else"))
    with pytest.raises(NotFoundError):
        other.get_job(job.id)  # another tenant's job does not exist for it
    with pytest.raises(NotFoundError):
        list(other.results(job.id))
    job.wait(timeout=120)
    assert job.counts == {"total": 2, "completed": 1, "failed": 1, "cancelled": 0}
    failed = list(job.results(only_failed=True))
    assert [x["error"]["code"] for x in failed] == ["input_too_long"]
    again = job.retry()
    assert again.data["retry_of"] == job.id and again.counts["total"] == 1
    ok = client.submit(MODEL, ["fine"]).wait(timeout=120)
    with pytest.raises(ConflictError) as nothing:
        ok.retry()
    assert nothing.value.code == "nothing_to_retry"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "fine"}\n{"input": "broken\n')
    with pytest.raises(InvalidRequestError) as bad_line:
        client.submit(MODEL, bad)
    assert (bad_line.value.code, bad_line.value.line) == ("invalid_json", 2)
    with pytest.raises(APIConnectionError):
        Client("http://127.0.0.1:9", live.key, max_retries=1).get_job("job_x")
    with pytest.raises(FileNotFoundError, match="pass a list for texts"):
        client.submit(MODEL, "just one text")


def test_files_and_cancel(live: Stack, tmp_path: Path) -> None:
    client = Client(live.url, live.key)
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"custom_id": "a", "input": "one"}\n{"input": "two"}\n')
    uploaded = client.upload_file(path, expires_after=7200)
    assert (uploaded.lines, uploaded.bytes, uploaded.purpose) == (2, path.stat().st_size, "jobs")
    assert uploaded.expires_at - uploaded.created_at == 7200  # type: ignore[operator]
    from_lines = client.upload_file([b'{"input": "three"}\n'], filename="x.jsonl")
    assert client.get_file(uploaded.id) == uploaded
    assert [f.id for f in client.list_files()] == [from_lines.id, uploaded.id]
    assert b"".join(client.file_content(uploaded.id)) == path.read_bytes()
    job = client.submit_file(MODEL, uploaded.id).wait(timeout=120)
    assert _ids(list(job.results())) == ["a", None]
    client.delete_file(from_lines.id)
    with pytest.raises(NotFoundError):
        client.get_file(from_lines.id)
    assert {m["id"] for m in client.list_models()} >= {MODEL, "tiny-classify"}

    waiting = client.submit("tiny-classify", ["no worker runs this model"])
    assert waiting.cancel() is waiting and waiting.status in ("cancelling", "cancelled")
    assert waiting.wait(timeout=60).status == "cancelled"
    with pytest.raises(TimeoutError):
        client.submit("tiny-classify", ["never runs"]).wait(timeout=0.5)


def test_async_client_takes_the_same_path(live: Stack, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    texts = bench_texts(150, seed=12)

    async def items() -> AsyncIterator[dict]:
        for i, t in enumerate(texts):
            yield {"custom_id": f"s{i}", "input": t}

    async def main() -> None:
        async with AsyncClient(live.url, live.key, inline_max_items=50) as client:
            small = await client.submit(MODEL, texts[:20])
            stream = io.StringIO()
            await small.wait(progress=True, stream=stream, timeout=120)
            assert small.counts["completed"] == 20 and "20/20" in stream.getvalue()
            lines = [x async for x in small.results()]
            _check_in_order(lines, 20)
            assert lines == list(live_results(live, small.id))

            big = await client.submit(MODEL, items())  # past the inline limit: a file
            assert big.data["input_file_id"]
            await big.wait(timeout=120)
            assert _ids([x async for x in big.results()]) == [f"s{i}" for i in range(150)]
            table = await big.to_arrow()
            assert table.num_rows == 150 and table.column("index").to_pylist() == list(range(150))

            path = tmp_path / "in.jsonl"
            path.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts[:10]))
            from_path = await (await client.submit(MODEL, path)).wait(timeout=120)
            assert from_path.counts["completed"] == 10
            assert [j.id async for j in client.list_jobs(limit=2)] == [from_path.id, big.id]

            with pytest.raises(InvalidRequestError) as bad_model:
                await client.submit("no-such-model", ["x"])
            assert bad_model.value.code == "unknown_model"
            with pytest.raises(NotFoundError):
                await client.get_job("job_missing")
        async with AsyncClient(live.url, "sk-wrong") as stranger:
            with pytest.raises(AuthenticationError) as wrong_key:
                await stranger.list_models()
            assert wrong_key.value.code == "invalid_api_key"

    asyncio.run(main())


@pytest.fixture
def proxied(sqlite_cfg, tmp_path: Path) -> Iterator[tuple[Stack, FaultProxy]]:
    """The API alone (no worker: jobs only need to be accepted), with a limit of one job a
    minute, behind a fault proxy."""
    stack = Stack(sqlite_cfg, tmp_path / "logs", make_key(sqlite_cfg.database_url, "client"))
    stack.env["SLUICE_JOBS_PER_MINUTE"] = "1"
    stack.start_api()
    proxy = FaultProxy(stack.url)
    try:
        yield stack, proxy
    finally:
        proxy.close()
        stack.close()


def test_retries_after_retry_after_and_gives_up_past_the_cap(proxied, tmp_path: Path) -> None:
    stack, proxy = proxied
    client = Client(proxy.url, stack.key, max_retries=2, max_retry_wait=5)
    proxy.plan("POST", "/v1/jobs", Fault(503, {"Retry-After": "1"}))
    job = client.submit(MODEL, ["retried once"])
    posts = proxy.requests("POST", "/v1/jobs")
    assert [p.status for p in posts] == [503, 201]  # the fault landed, then the retry
    assert posts[1].at - posts[0].at >= 1.0  # after the server's Retry-After
    assert stack.job(job.id)["counts"]["total"] == 1  # one job, on the real API

    # A wait longer than the client accepts raises at once, with the server's figure.
    proxy.plan(
        "GET", f"/v1/jobs/{job.id}", Fault(429, {"Retry-After": "30"}, "rate_limit_exceeded")
    )
    with pytest.raises(RateLimitError) as limited:
        client.get_job(job.id)
    assert (limited.value.code, limited.value.retry_after) == ("rate_limit_exceeded", 30.0)
    assert [s.status for s in proxy.requests("GET", f"/v1/jobs/{job.id}")] == [429]

    # Retries run out: the last answer is raised, typed.
    proxy.plan("GET", "/v1/models", *[Fault(503, {"Retry-After": "0"})] * 3)
    with pytest.raises(ServiceUnavailableError) as down:
        client.list_models()
    assert down.value.code == "service_unavailable"
    assert len(proxy.requests("GET", "/v1/models")) == 3  # the call and two retries

    # A dropped connection: a GET is sent again, a POST (which may have landed) is not.
    proxy.plan("GET", f"/v1/jobs/{job.id}", Fault(drop=True))
    assert client.get_job(job.id).id == job.id
    assert [s.status for s in proxy.requests("GET", f"/v1/jobs/{job.id}")][-2:] == [0, 200]
    proxy.plan("POST", "/v1/jobs", Fault(drop=True))
    with pytest.raises(APIConnectionError):
        client.submit(MODEL, ["maybe sent"])
    assert [p.status for p in proxy.requests("POST", "/v1/jobs")][-1] == 0

    # An upload from a path is read again for a retry; one from an iterator cannot be.
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"input": "a"}\n{"input": "b"}\n')
    proxy.plan("POST", "/v1/files", Fault(503, {"Retry-After": "0"}))
    assert client.upload_file(path).lines == 2
    proxy.plan("POST", "/v1/files", Fault(503, {"Retry-After": "0"}))
    with pytest.raises(ServiceUnavailableError):
        client.upload_file(iter([b'{"input": "once"}\n']))
    assert [s.status for s in proxy.requests("POST", "/v1/files")] == [503, 200, 503]

    # The real API's own limit (one job a minute, counted in calendar minutes: a new minute
    # may let one more through): a typed 429 with its Retry-After.
    direct = Client(stack.url, stack.key, max_retries=0)
    with pytest.raises(RateLimitError) as real:
        for _ in range(3):
            direct.submit(MODEL, ["over the limit"])
    assert real.value.code == "quota_exceeded" and real.value.retry_after


def test_async_client_retries_after_retry_after(proxied) -> None:
    stack, proxy = proxied

    async def main() -> None:
        async with AsyncClient(proxy.url, stack.key, max_retries=1) as client:
            proxy.plan("POST", "/v1/jobs", Fault(503, {"Retry-After": "1"}))
            started = time.monotonic()
            job = await client.submit(MODEL, ["async, retried once"])
            assert time.monotonic() - started >= 1.0
            assert (await client.get_job(job.id)).counts["total"] == 1
            proxy.plan("GET", "/v1/models", Fault(503, {"Retry-After": "0"}), Fault(503))
            with pytest.raises(ServiceUnavailableError):
                await client.list_models()

    asyncio.run(main())
    posts = proxy.requests("POST", "/v1/jobs")
    assert [p.status for p in posts] == [503, 201] and posts[1].at - posts[0].at >= 1.0
    assert [s.status for s in proxy.requests("GET", "/v1/models")] == [503, 503]
