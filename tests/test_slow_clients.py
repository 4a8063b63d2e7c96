"""Slow and vanishing clients against a live `sluice api`, over raw sockets: a request head
that dribbles in is cut at the header deadline with a 408, a body that stalls is a 408
(nothing of an upload is kept), a tenant's uploads in progress are capped (429 past it,
other tenants unaffected), and a client that leaves mid-upload costs one log line, no
traceback and no row."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from core.db import read_session
from core.tables import File
from tests.conftest import make_key
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
DEADLINE = 1.5  # both the header and the body deadline of the API under test
BOUNDARY = "slowboundary"


@pytest.fixture
def live(cfg, tmp_path) -> Iterator[Stack]:
    """A live API with short deadlines and two uploads per tenant."""
    stack = Stack(cfg, tmp_path / "logs", make_key(cfg.database_url, "alice"))
    stack.env.update(
        SLUICE_HEADER_TIMEOUT_SECONDS=str(DEADLINE),
        SLUICE_BODY_TIMEOUT_SECONDS=str(DEADLINE),
        SLUICE_MAX_UPLOADS_PER_TENANT="2",
    )
    stack.start_api()
    yield stack
    stack.close()


def _connect(stack: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.port), timeout=30)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _upload_head(key: str, length: int) -> bytes:
    return (
        "POST /v1/files HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'
    ).encode()


def _lines(n: int) -> bytes:
    return b"".join(
        orjson.dumps({"custom_id": f"c{i}", "input": f"t {i}"}) + b"\n" for i in range(n)
    )


def _file_rows(stack: Stack) -> int:
    with read_session(stack.cfg.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(File)) or 0)


def test_a_dribbled_request_head_is_cut_with_a_408(live):
    sock = _connect(live)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    started, sent, closed = time.monotonic(), 0, False
    try:
        while time.monotonic() - started < 20:  # a byte every 0.2 s: 100 bytes at most
            sock.sendall(b"X-Slow: " if sent == 0 else b"a")
            sent += 1
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    answer = _read_all(sock) if not closed else b""
    sock.close()
    assert closed or answer.startswith(b"HTTP/1.1 408"), answer
    if answer:
        assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 15  # cut by the deadline, not by the loop's end


def test_an_idle_connection_is_closed_and_a_kept_alive_one_still_works(live):
    idle = _connect(live)
    answer = _read_all(idle)  # nothing sent: the server closes at the deadline
    idle.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    with httpx.Client(base_url=live.url) as client:  # one connection, several requests
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(DEADLINE * 0.6)  # under the deadline: each head arrives at once
    keep = _connect(live)
    keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    first = b""
    while not first.endswith(b'{"status":"ok"}'):  # the whole first answer
        first += keep.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    keep.sendall(b"GET /healthz HTTP/1.1\r\n")  # the second request's head stalls
    answer = _read_all(keep)
    keep.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_stalled_json_body_is_a_408(live):
    sock = _connect(live)
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {live.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"model": "tiny-embed", ')
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_stalled_upload_is_a_408_and_keeps_nothing(live):
    sock = _connect(live)
    sock.sendall(_upload_head(live.key, 1 << 20) + _lines(1000))
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert _file_rows(live) == 0
    assert live.http.get("/v1/files").json()["data"] == []


class _Dribbler(threading.Thread):
    """An upload that keeps sending a byte every 0.3 s (under the body deadline)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.sock = _connect(stack)
        self.sock.sendall(_upload_head(stack.key, 1 << 20) + b'{"input": "')
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            try:
                self.sock.sendall(b"x")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()


def _upload(stack: Stack, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/v1/files",
        files={"file": ("in.jsonl", _lines(2))},
        data={"purpose": "jobs"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _until(check, seconds: float = 15.0):  # type: ignore[no-untyped-def]
    """Retry check() until it returns something truthy, or fail."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("condition never held")


def test_a_tenants_uploads_in_progress_are_capped(live):
    bob = make_key(live.cfg.database_url, "bob")
    slow = [_Dribbler(live) for _ in range(2)]
    for d in slow:
        d.start()
    try:
        refused = _until(lambda: (r := _upload(live, live.key)).status_code == 429 and r)
        assert refused.json()["error"]["code"] == "too_many_uploads"
        assert int(refused.headers["Retry-After"]) > 0
        assert _upload(live, bob).status_code == 200  # another tenant is not held up
        assert _file_rows(live) == 3  # two in progress, bob's done
    finally:
        for d in slow:
            d.close()
    # The slow clients left: their slots and rows go, and alice uploads again.
    assert _until(lambda: _upload(live, live.key).status_code == 200)
    assert _until(lambda: _file_rows(live) == 2)


def test_a_client_leaving_mid_upload_logs_one_line_and_keeps_nothing(live):
    sock = _connect(live)
    sock.sendall(_upload_head(live.key, 10 << 20) + _lines(5000))
    time.sleep(0.5)
    sock.close()
    log = live.logs / "api.log"
    _until(lambda: "went away" in log.read_text())
    time.sleep(0.5)  # anything logged after the line would show now
    text = log.read_text()
    assert len([line for line in text.splitlines() if "went away" in line]) == 1, text
    assert "Traceback" not in text, text
    _until(lambda: _file_rows(live) == 0)
