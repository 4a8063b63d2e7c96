"""A bounded and safe API: keys are checked before a body is read, large bodies are parsed
off the event loop (with the same answers), and a 100,000-input job leaves the API's memory
bounded. The process tests run a real API (`sluice api`) on SQLite."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import STATUSES, status_of
from core import errors
from core.config import Settings
from core.db import get_engine, migrate
from tests.conftest import auth, make_key
from tests.services import REDIS_URL, delete_prefix, redis_client
from tests.stack import Stack
from tests.test_api import BAD
from tests.tiny_models import bench_texts

MIB = 1 << 20


def test_every_error_kind_has_one_status_and_core_carries_none():
    kinds = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.SluiceError)
    ]
    assert set(kinds) == set(STATUSES)
    assert not any("status" in vars(c) for c in kinds)
    assert status_of(errors.QuotaExceeded("x", retry_after=1)) == 429
    assert status_of(errors.Unauthorized("x")) == 401


# Bodies FastAPI answers on its own: broken JSON, lone surrogates (orjson refuses them and
# json.loads takes them), NaN, a query parameter the route does not take.
RAW = [
    ("/v1/jobs", b'{"model": "tiny-embed", "inputs": [', 422),
    ("/v1/jobs", b'{"model": "tiny-embed", "inputs": [{"input": "a \\ud800 b"}]}', 400),
    ("/v1/jobs", b'{"model": "tiny-embed", "inputs": [{"input": NaN}]}', 400),
    ("/v1/jobs?limt=5", b'{"model": "tiny-embed", "inputs": "abc"}', 400),
    ("/v1/jobs", b'{"model": "tiny-embed", "inputs": [{"input": "x"}], "oops": 1}', 422),
    ("/v1/batches", b'{"input_file_id": 5}', 400),
    ("/v1/jobs", b"null", 422),
]


def test_large_bodies_parsed_in_a_thread_get_the_same_answers(cfg):
    """Every refusal is the same whether the body is parsed on the loop (small) or in a
    worker thread (large_body_bytes 0 makes every body large)."""
    key = auth(make_key(cfg.database_url, "a"))
    limits = {"max_inputs_per_job": 10, "max_input_chars": 2000}
    answers = []
    for large in (1 << 20, 0):
        app = create_app(cfg.model_copy(update={**limits, "large_body_bytes": large}))
        got = []
        with TestClient(app) as api:
            for body, _, _ in BAD:
                got.append(api.post("/v1/jobs", json=body, headers=key))
            for path, raw, _ in RAW:
                got.append(
                    api.post(path, content=raw, headers={**key, "Content-Type": "application/json"})
                )
            many = {"model": "tiny-embed", "inputs": [{"input": f"t{i}"} for i in range(3000)]}
            many["inputs"][2500] = {"text": "x"}  # an error past the first validated slice
            got.append(api.post("/v1/jobs", json=many, headers=key))
        answers.append([(r.status_code, r.json()) for r in got])
    small, large = answers
    assert small == large
    expected = [s for _, s, _ in BAD] + [s for _, _, s in RAW] + [422]
    assert [s for s, _ in large] == expected
    assert large[-1][1]["error"]["param"] == "inputs[2500].input"


def test_a_large_valid_body_makes_the_same_job(cfg):
    key = auth(make_key(cfg.database_url, "a"))
    body = {
        "model": "tiny-embed",
        "inputs": [{"custom_id": f"c{i}", "input": f"text {i}"} for i in range(3000)],
        "metadata": {"k": "v"},
        "priority": 2,
    }
    with TestClient(create_app(cfg.model_copy(update={"large_body_bytes": 0}))) as api:
        job = api.post("/v1/jobs", json=body, headers=key).json()
    assert job["counts"]["total"] == 3000 and job["priority"] == 2
    assert job["metadata"] == {"k": "v"}


def test_openapi_keeps_the_bearer_scheme_and_the_body_schemas(api):
    spec = api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    post = spec["paths"]["/v1/jobs"]["post"]
    assert post["security"] == [{"HTTPBearer": []}]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobCreate"}
    assert "security" not in spec["paths"]["/healthz"]["get"]


# --- a real API process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_api(registry_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A `sluice api` process on a SQLite file of its own (no worker: jobs stay queued)."""
    tmp = tmp_path_factory.mktemp("bounded")
    url = f"sqlite:///{tmp / 'sluice.db'}"
    migrate(url)
    prefix = f"sluicetest:{uuid.uuid4().hex[:10]}:"
    cfg = Settings(
        database_url=url, redis_url=REDIS_URL, redis_prefix=prefix, models_file=registry_file
    )
    stack = Stack(cfg, tmp / "logs", make_key(url, "bounded"))
    stack.start_api()
    yield stack
    stack.close()
    get_engine(url).dispose()
    delete_prefix(redis_client(), prefix)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _start_post(port: int, path: str, headers: dict[str, str], length: int) -> socket.socket:
    """A raw HTTP/1.1 POST declaring `length` body bytes, of which nothing is sent yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {length}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a (complete, Content-Length framed) response."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    size = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
    while len(rest) < size:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), json.loads(rest[:size])


@pytest.mark.parametrize(
    "headers,code",
    [
        ({"Authorization": "Bearer sk-sluice-wrong"}, "invalid_api_key"),
        ({}, "missing_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches", "/v1/files", "/v1/jobs/x/cancel"])
def test_a_bad_key_is_refused_before_the_body_is_read(real_api, headers, code, path):
    """A 30 MiB body of which only the first 64 KiB is ever sent: the 401 comes back while
    the server still waits for the rest, so it read at most that first block."""
    sock = _start_post(real_api.port, path, headers, 30 * MIB)
    with sock:
        sock.sendall(b"[" + b" " * (64 * 1024 - 1))
        started = time.monotonic()
        status, body = _response(sock)
    assert status == 401 and body["error"]["code"] == code
    assert body["error"]["type"] == "authentication_error"
    assert time.monotonic() - started < 5


def test_a_good_key_waits_for_the_body(real_api):
    """The counter-case of the one above: with a valid key the server reads on, so no
    answer comes while the body is incomplete."""
    auth_header = {"Authorization": f"Bearer {real_api.key}"}
    with _start_post(real_api.port, "/v1/jobs", auth_header, 30 * MIB) as sock:
        sock.sendall(b"[" + b" " * (64 * 1024 - 1))
        sock.settimeout(1.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def _texts(n: int, chars: int = 560) -> list[str]:
    """n texts of about `chars` characters from the bench corpora (100,000 are ~60 MiB)."""
    pool = bench_texts(4000, seed=3)
    out, k = [], 0
    for i in range(n):
        want = chars // 2 + (i * 7919) % chars  # chars/2 to 3*chars/2, spread evenly
        parts: list[str] = []
        while sum(map(len, parts)) + len(parts) < want:
            parts.append(pool[k % len(pool)])
            k += 1
        out.append(" ".join(parts)[:want])
    return out


@pytest.mark.timeout(600)
def test_a_100k_input_job_keeps_the_api_small_and_responsive(real_api):
    """One POST of 100,000 inputs (~60 MiB): the API's peak RSS (VmHWM, reset first) stays
    under 400 MiB above idle, /healthz answers promptly throughout (the body is parsed and
    checked off the event loop), also while a wrong key's large body trickles in, and most
    of the memory goes back to the OS afterwards."""
    pid = real_api.api.pid
    body = json.dumps(
        {
            "model": "all-minilm-l6-v2",
            "inputs": [{"custom_id": f"i{i}", "input": t} for i, t in enumerate(_texts(100_000))],
        }
    ).encode()
    assert len(body) > 55 * MIB
    assert real_api.http.get("/v1/jobs").status_code == 200  # warm: key cached, routes built
    idle = _status_kib(pid, "VmRSS") / 1024
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    slowest = 0.0
    done = threading.Event()

    def probe() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.perf_counter()
            assert real_api.http.get("/healthz").status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.02)

    intruder = _start_post(real_api.port, "/v1/jobs", {"Authorization": "Bearer nope"}, 30 * MIB)
    prober = threading.Thread(target=probe)
    prober.start()
    try:
        intruder.sendall(b" " * 65536)
        r = real_api.http.post(
            "/v1/jobs", content=body, headers={"Content-Type": "application/json"}, timeout=600
        )
    finally:
        done.set()
        prober.join()
        intruder.close()
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["total"] == 100_000
    peak = _status_kib(pid, "VmHWM") / 1024 - idle
    assert peak < 400, f"peak {peak:.0f} MiB above idle"
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s"
    time.sleep(0.5)
    after = _status_kib(pid, "VmRSS") / 1024 - idle
    assert after < peak / 2, (after, peak)
