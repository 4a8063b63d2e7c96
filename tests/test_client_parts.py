"""The client's pure parts: what it imports, error typing from the server's envelope,
Retry-After, the retry policy, result-line splitting, inputs to JSONL, paging."""

from __future__ import annotations

import gzip
import io
import json
import signal
import subprocess
import sys
import threading
import tomllib
from email.utils import formatdate
from pathlib import Path

import pytest
from sluice_client import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    ServiceUnavailableError,
    endpoints,
)
from sluice_client.endpoints import Pages
from sluice_client.errors import error_from_response
from sluice_client.inputs import item_lines, path_blocks
from sluice_client.lines import split_lines
from sluice_client.progress import (
    PlainProgress,
    describe,
    job_progress,
    start_display_thread,
)
from sluice_client.retry import RetryPolicy, parse_retry_after
from sluice_client.submission import inline_body, take_inline

ROOT = Path(__file__).resolve().parents[1]


def test_the_client_is_its_own_distribution_on_httpx_alone() -> None:
    meta = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "sluice-client" and meta["dependencies"] == ["httpx>=0.27"]
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("sluice-client") for d in main["project"]["dependencies"])
    assert not any("client" in p for p in main["tool"]["setuptools"]["packages"])
    probe = (
        "import sys, sluice_client; "
        "print([m for m in ('torch', 'pandas', 'pyarrow', 'core', 'api', 'cli', 'worker') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "[]"


def _error(status: int, body: object, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_from_response(status, raw, headers or {})


def test_errors_are_typed_from_the_envelope() -> None:
    err = _error(
        400,
        {
            "error": {
                "message": "line 2: not valid JSON",
                "type": "invalid_request_error",
                "param": "file",
                "code": "invalid_json",
                "details": {"line": 2},
            }
        },
    )
    assert isinstance(err, InvalidRequestError)
    assert (err.status, err.code, err.param, err.line) == (400, "invalid_json", "file", 2)
    assert str(err) == "HTTP 400 invalid_json: line 2: not valid JSON"
    kinds = {401: AuthenticationError, 404: NotFoundError, 413: RequestTooLargeError}
    for status, kind in kinds.items():
        assert type(_error(status, {"error": {"message": "m", "code": "c"}})) is kind
    limited = _error(
        429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, {"retry-after": "7"}
    )
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7.0
    proxy = _error(503, b"<html>bad gateway</html>")
    assert isinstance(proxy, ServiceUnavailableError) and proxy.code == "http_503"
    assert "bad gateway" in proxy.message and proxy.line is None
    assert type(_error(502, b"")) is ServerError


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == 30.0


def test_the_policy_honours_retry_after_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retries=2, max_wait=10)
    assert policy.delay(1, 4.0) == 4.0
    assert policy.delay(1, 11.0) is None  # longer than the client accepts: raise at once
    assert policy.delay(3, 1.0) is None  # out of retries
    assert all(0.25 <= policy.delay(1, None) <= 0.5 for _ in range(50))  # type: ignore[operator]
    assert all(0.5 <= policy.delay(2, None) <= 1.0 for _ in range(50))  # type: ignore[operator]


def test_result_lines_end_at_newlines_only() -> None:
    lines = [
        json.dumps({"index": 0, "output": {"text": "a\u2028b\u0085c\x1cd\re"}}, ensure_ascii=False),
        json.dumps({"index": 1, "output": {"text": "x" * 5000}}),
        json.dumps({"index": 2, "output": {"text": "last"}}),
    ]
    data = ("\n".join(lines) + "\n\n").encode()
    for size in (1, 7, 64, len(data)):
        blocks = [data[i : i + size] for i in range(0, len(data), size)]
        assert [x.decode() for x in split_lines(blocks)] == lines
    assert list(split_lines([b'{"a": 1}\n{"b"', b": 2}"])) == [b'{"a": 1}', b'{"b": 2}']


def test_inputs_become_items_one_line_each() -> None:
    values = ["text", {"input": "given", "custom_id": "c1"}, {"messages": []}, b"\x89PNG"]
    lines = [json.loads(x) for x in item_lines(values)]
    assert lines == [
        {"input": "text"},
        {"input": "given", "custom_id": "c1"},
        {"input": {"messages": []}},
        {"input": "iVBORw=="},
    ]
    with pytest.raises(ValueError, match="input 1 cannot be sent as JSON"):
        list(item_lines(["ok", float("nan")]))
    for single in ({"input": "one item"}, b"one image"):
        with pytest.raises(TypeError, match="put a single one in a list"):
            list(item_lines(single))  # type: ignore[arg-type]


def test_dataframes_and_arrow_tables_are_read_by_column() -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"custom_id": [10, 11], "input": ["a", "b"], "other": [1, 2]})
    assert [json.loads(x) for x in item_lines(frame)] == [
        {"input": "a", "custom_id": "10"},
        {"input": "b", "custom_id": "11"},
    ]
    table = pa.table({"text": ["x", "y", "z"]})
    assert [json.loads(x)["input"] for x in item_lines(table)] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="needs an 'input' column"):
        list(item_lines(pd.DataFrame({"a": [1], "b": [2]})))


def test_files_are_sent_as_jsonl_or_as_text_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b'{"input": "a"}\nnot json\n'))
    assert b"".join(path_blocks(jsonl)) == b'{"input": "a"}\nnot json\n'  # the server judges
    text = tmp_path / "in.txt"
    text.write_bytes(b"first line\r\n\n  \nsecond \xe2\x80\xa8 line\n")
    assert [json.loads(x)["input"] for x in path_blocks(text)] == [
        "first line",
        "second \u2028 line",
    ]


def test_inline_until_a_limit_then_the_rest_stays_unread() -> None:
    lines = (b'{"input":"%d"}\n' % i for i in range(100))
    taken, overflow = take_inline(lines, max_items=10, max_bytes=1 << 20)
    assert len(taken) == 10 and overflow == b'{"input":"10"}\n'
    assert next(lines) == b'{"input":"11"}\n'  # the rest was not read
    taken, overflow = take_inline(iter(taken), max_items=100, max_bytes=45)
    assert len(taken) == 3 and overflow is not None
    body = json.loads(inline_body({"model": "m", "params": {}}, taken))
    assert body == {
        "inputs": [{"input": "0"}, {"input": "1"}, {"input": "2"}],
        "model": "m",
        "params": {},
    }


def test_pages_follow_the_cursor_up_to_the_limit() -> None:
    pages = Pages("/v1/jobs", {"limit": 2}, "next_cursor", limit=3)
    first = pages.next_call()
    assert first is not None and first.params == {"limit": 2}
    assert len(pages.take({"data": [{}, {}], "has_more": True, "next_cursor": "j2"})) == 2
    second = pages.next_call()
    assert second is not None and second.params == {"limit": 2, "after": "j2"}
    assert len(pages.take({"data": [{}, {}], "has_more": True, "next_cursor": "j4"})) == 1
    assert pages.next_call() is None


def test_list_filters_and_retry_kinds_reach_the_request() -> None:
    jobs = endpoints.job_pages(5, 100, None, status="failed", model="m").next_call()
    assert jobs is not None and jobs.params == {"limit": 100, "status": "failed", "model": "m"}
    batches = endpoints.batch_pages(None, 20).next_call()
    assert batches is not None and (batches.path, batches.params) == ("/v1/batches", {"limit": 20})
    assert endpoints.retry_job("j").json is None  # the server's default: failed items
    plan = endpoints.retry_job("j", ["failed", "cancelled"])
    assert plan.json == {"include": ["failed", "cancelled"]}


def test_the_plain_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # rich not installed
    monkeypatch.setitem(sys.modules, "rich.console", None)
    out = io.StringIO()
    display = job_progress(True, out)
    assert isinstance(display, PlainProgress)
    job = {
        "id": "job_1",
        "status": "in_progress",
        "counts": {"total": 200, "completed": 50, "failed": 0},
    }
    display.update({**job, "throughput": 25.0, "eta_seconds": 6})
    display.update(
        {**job, "status": "completed", "counts": {"total": 200, "completed": 198, "failed": 2}}
    )
    display.close()
    assert out.getvalue().splitlines() == [
        "job_1 in_progress: 50/200 (25%) 25 items/s ETA 6 s",
        "job_1 completed: 200/200 (100%)",
    ]
    assert describe({"id": "j", "status": "validating", "counts": {}}) == "j validating: 0/0"


def _blocked_in(tid: int) -> set[int]:
    """The signals a thread of this process blocks (from /proc)."""
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    mask = int(next(x for x in status.splitlines() if x.startswith("SigBlk:")).split()[1], 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads thread masks in /proc")
def test_a_progress_displays_thread_never_takes_a_ctrl_c():
    """Taken by the display's thread, a SIGINT would wait for the main thread's long-poll
    read to end; blocked there, it always lands on the main thread, at once."""
    seen: list[set[int]] = []

    def start() -> None:
        thread = threading.Thread(
            target=lambda: seen.append(_blocked_in(threading.get_native_id()))
        )
        thread.start()
        thread.join()

    start_display_thread(start)
    assert signal.SIGINT in seen[0]
    assert signal.SIGINT not in _blocked_in(threading.get_native_id())  # the main one's

    display = job_progress(True, io.StringIO())
    before = {t.native_id for t in threading.enumerate()}
    display.update({"status": "in_progress", "counts": {"total": 10, "completed": 1}})
    try:
        refreshers = [t for t in threading.enumerate() if t.native_id not in before]
        assert refreshers and all(signal.SIGINT in _blocked_in(t.native_id) for t in refreshers)
    finally:
        display.close()
