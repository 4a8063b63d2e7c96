"""Server-sent events of a job, on both databases, from a real uvicorn server in this process
(so its watcher can be inspected): event order, resume by Last-Event-ID, heartbeats,
tenant isolation, stream bounds, disconnects, and one read per interval for every listener.
The job is moved along by writing its row, as a worker would."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import event, update

from api.app import create_app
from api.job_events import Seen, parse_event_id
from cli.processes import free_port
from core.config import Settings
from core.db import get_engine, write_session
from core.store.tenants import create_key
from core.tables import Job
from tests.conftest import auth, make_key

INTERVAL = 0.1
HEARTBEAT = 0.5


@dataclass
class Live:
    """A running API: its URL and the app (for its watcher and stream slots)."""

    url: str
    app: Any
    cfg: Settings

    def submit(self, headers: dict[str, str], n: int = 100) -> str:
        body = {"model": "tiny-embed", "inputs": [{"input": f"text {i}"} for i in range(n)]}
        r = httpx.post(f"{self.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def set_job(self, job_id: str, **values: Any) -> None:
        """Write the job's row, as a worker's progress would."""
        with write_session(self.cfg.database_url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def until(self, check: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)


@pytest.fixture
def live(cfg: Settings) -> Iterator[Live]:
    """The API served by uvicorn on a thread, with a short watch interval and heartbeat."""
    cfg = cfg.model_copy(
        update={
            "watch_interval_seconds": INTERVAL,
            "event_heartbeat_seconds": HEARTBEAT,
            "max_event_streams": 5,
            "max_event_streams_per_tenant": 3,
        }
    )
    app = create_app(cfg)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Live(f"http://127.0.0.1:{port}", app, cfg)
    server.should_exit = True
    thread.join(20)


@dataclass
class Received:
    """One event as a client parses it (or a comment)."""

    name: str
    id: str | None = None
    data: Any = None
    at: float = field(default_factory=time.monotonic)


def read_stream(
    response: httpx.Response | Iterator[str], stop: Callable[[list[Received]], bool]
) -> list[Received]:
    """Parse events (and `:` comments, as name "comment") until stop(events) or the end (of
    a response, or of its lines: an iterator kept alive keeps the connection open)."""
    out: list[Received] = []
    fields: dict[str, str] = {}
    lines = response.iter_lines() if isinstance(response, httpx.Response) else response
    for line in lines:
        if line.startswith(":"):
            out.append(Received("comment", data=line))
        elif line:
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
        elif "event" in fields:
            out.append(Received(fields["event"], fields.get("id"), orjson.loads(fields["data"])))
            fields = {}
        else:
            fields = {}  # the retry: field alone
        if out and stop(out):
            break
    return out


def events(live: Live, job_id: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
    return httpx.get(f"{live.url}/v1/jobs/{job_id}/events", headers=headers, timeout=30, **kw)


def stream(live: Live, job_id: str, headers: dict[str, str]) -> Any:
    return httpx.stream("GET", f"{live.url}/v1/jobs/{job_id}/events", headers=headers, timeout=30)


def test_event_ids_name_what_the_client_has_seen():
    seen = Seen(status="in_progress", counts=(5000, 1200, 3))
    assert seen.event_id() == "in_progress.5000.1200.3"
    assert parse_event_id(seen.event_id()) == seen
    ended = Seen(status="completed", counts=(10, 9, 1), ended=True)
    assert parse_event_id(ended.event_id()) == ended
    assert parse_event_id("-.10.4.0") == Seen(counts=(10, 4, 0))
    for bad in (None, "", "42", "nonsense.1.2.3", "queued.1.2", "queued.a.b.c", "x" * 500):
        assert parse_event_id(bad) == Seen()


def test_a_stream_sends_progress_status_and_end_in_order(live, alice):
    job_id = live.submit(alice)

    def work() -> None:  # a worker's progress, one write at a time
        time.sleep(0.3)
        live.set_job(job_id, status="in_progress", started_at=time.time())
        for done in range(5, 101, 5):
            time.sleep(0.05)
            live.set_job(job_id, completed=done - done // 25, failed=done // 25)
        time.sleep(0.3)
        live.set_job(job_id, status="completed", finished_at=time.time())

    worker = threading.Thread(target=work)
    started = time.monotonic()
    with stream(live, job_id, alice) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        worker.start()
        got = read_stream(r, lambda out: False)  # to the end: the server closes the stream
    elapsed = time.monotonic() - started
    worker.join()
    named = [e for e in got if e.name != "comment"]
    assert named[-1].name == "end" and named[-1].data["status"] == "completed"
    assert [e.data["status"] for e in named if e.name == "status"] == [
        "queued",
        "in_progress",
        "completed",
    ]
    progress = [e.data for e in named if e.name == "progress"]
    done = [(p["counts"]["completed"], p["counts"]["failed"]) for p in progress]
    assert done == sorted(done), "counts never go back"
    assert done[-1] == (96, 4) and len(progress) >= 3
    assert set(progress[-1]) == {"id", "status", "counts", "items_per_second", "eta_seconds"}
    assert progress[-1]["items_per_second"] > 0
    # At most two progress events a second (the counts moved twenty times in a second).
    assert len(progress) <= 2 * elapsed + 3
    # The status and end events carry the job as GET shows it.
    body = httpx.get(f"{live.url}/v1/jobs/{job_id}", headers=alice).json()
    assert named[-1].data == body
    # Every event has an id, and the ids only move forward.
    ids = [parse_event_id(e.id) for e in named]
    assert all(e.id for e in named) and ids[-1].ended
    assert [i.counts for i in ids] == sorted(i.counts for i in ids)


def test_last_event_id_resumes_without_repeats(live, alice):
    job_id = live.submit(alice)
    live.set_job(job_id, status="in_progress", started_at=time.time(), completed=30)
    with stream(live, job_id, alice) as r:
        first = read_stream(r, lambda out: out[-1].name == "status")
    assert [e.name for e in first] == ["progress", "status"]
    last = first[-1].id
    assert parse_event_id(last) == Seen(status="in_progress", counts=(100, 30, 0))

    live.set_job(job_id, completed=50)
    with stream(live, job_id, {**alice, "Last-Event-ID": last}) as r:
        resumed = read_stream(r, lambda out: True)
    assert resumed[0].name == "progress" and resumed[0].data["counts"]["completed"] == 50

    # Nothing new since that id: nothing is sent again, only the heartbeat.
    with stream(live, job_id, {**alice, "Last-Event-ID": resumed[0].id}) as r:
        quiet = read_stream(r, lambda out: True)
    assert quiet[0].name == "comment" and quiet[0].data == ": ping"

    live.set_job(job_id, status="completed", completed=100, finished_at=time.time())
    with stream(live, job_id, {**alice, "Last-Event-ID": resumed[0].id}) as r:
        final = read_stream(r, lambda out: False)
    assert [e.name for e in final] == ["progress", "status", "end"]
    # Resumed after the end: 204, which tells an EventSource to stop reconnecting.
    r = events(live, job_id, {**alice, "Last-Event-ID": final[-1].id})
    assert r.status_code == 204 and r.content == b""
    # A malformed id is a fresh start.
    with stream(live, job_id, {**alice, "Last-Event-ID": "garbage"}) as r:
        fresh = read_stream(r, lambda out: False)
    assert [e.name for e in fresh] == ["progress", "status", "end"]
    r = events(live, job_id, {**alice, "Last-Event-ID": "x" * 201})
    assert r.status_code == 422


def test_an_idle_stream_sends_heartbeat_comments(live, alice):
    job_id = live.submit(alice)
    with stream(live, job_id, alice) as r:
        got = read_stream(r, lambda out: sum(e.name == "comment" for e in out) >= 2)
    assert [e.name for e in got] == ["progress", "status", "comment", "comment"]
    assert got[-1].data == ": ping"


def test_another_tenants_key_gets_404_and_an_admin_key_the_stream(live, alice, bob):
    job_id = live.submit(alice)
    for headers, path in [
        (bob, f"/v1/jobs/{job_id}/events"),
        (alice, "/v1/jobs/job_doesnotexist/events"),
    ]:
        r = httpx.get(f"{live.url}{path}", headers=headers, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{live.url}/v1/jobs/{job_id}/events", timeout=30)
    assert r.status_code == 401
    with write_session(live.cfg.database_url) as session:
        admin = auth(create_key(session=session, tenant_name="ops", admin=True)[1])
    with stream(live, job_id, admin) as r:
        got = read_stream(r, lambda out: out[-1].name == "status")
    assert got[-1].data["id"] == job_id


def test_streams_are_bounded_and_a_disconnect_frees_its_place(live, alice, bob):
    carol = auth(make_key(live.cfg.database_url, "carol"))
    job_a, job_b, job_c = live.submit(alice), live.submit(bob), live.submit(carol)
    watcher, slots = live.app.state.job_watcher, live.app.state.stream_slots
    with httpx.Client(timeout=30) as client:
        held = []
        for headers, job_id in [(alice, job_a)] * 3 + [(bob, job_b)] * 2:
            response = client.send(
                client.build_request("GET", f"{live.url}/v1/jobs/{job_id}/events", headers=headers),
                stream=True,
            )
            assert response.status_code == 200
            lines = response.iter_lines()
            read_stream(lines, lambda out: out[-1].name == "status")
            held.append((response, lines))
        assert slots.open == 5 and watcher.listeners == 5 and watcher.watched == 2
        r = client.get(f"{live.url}/v1/jobs/{job_a}/events", headers=alice)  # alice's 4th
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_streams"
        assert r.headers["Retry-After"]
        r = client.get(f"{live.url}/v1/jobs/{job_c}/events", headers=carol)  # the 6th
        assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_streams"
        assert r.headers["Retry-After"]
        r = client.get(f"{live.url}/v1/jobs/{job_b}/events", headers=bob)  # bob's 3rd
        assert r.status_code == 503
        for response, _ in held:  # the clients go away
            response.close()
        live.until(lambda: slots.open == 0 and watcher.listeners == 0)
        live.until(lambda: watcher.watched == 0)
        reads = watcher.reads
        time.sleep(INTERVAL * 5)
        assert watcher.reads == reads, "nobody listens: no more reads"
        with client.stream("GET", f"{live.url}/v1/jobs/{job_a}/events", headers=alice) as r:
            assert r.status_code == 200  # a place again


def test_every_listener_of_a_job_shares_one_read_per_interval(live, alice):
    job_id = live.submit(alice)
    live.set_job(job_id, status="in_progress", started_at=time.time(), completed=10)
    watcher = live.app.state.job_watcher
    engine = get_engine(live.cfg.database_url)
    job_reads = 0

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        nonlocal job_reads
        if "FROM jobs" in statement:
            job_reads += 1

    streams, polls, gets = 3, 20, 40  # three SSE streams: alice's bound is 3 here

    async def main() -> tuple[list, list, int]:
        async with httpx.AsyncClient(base_url=live.url, headers=alice, timeout=30) as client:

            async def listen() -> list[Received]:
                async with client.stream("GET", f"/v1/jobs/{job_id}/events") as r:
                    assert r.status_code == 200
                    out: list[Received] = []
                    async for line in r.aiter_lines():
                        if line.startswith("event: "):
                            out.append(Received(line.removeprefix("event: ")))
                    return out

            async def long_poll() -> dict:
                r = await client.get(f"/v1/jobs/{job_id}", params={"wait": 30})
                assert r.status_code == 200
                return r.json()

            async def plain_gets() -> int:
                answered = 0
                for _ in range(gets):
                    r = await client.get(f"/v1/jobs/{job_id}")
                    assert r.status_code == 200 and r.json()["counts"]["completed"] == 10
                    answered += 1
                    await asyncio.sleep(INTERVAL / 4)
                return answered

            listeners = [asyncio.create_task(listen()) for _ in range(streams)]
            waiters = [asyncio.create_task(long_poll()) for _ in range(polls)]
            answered = await plain_gets()  # meanwhile ten intervals pass
            await asyncio.sleep(INTERVAL)
            assert watcher.watched == 1 and watcher.listeners == streams + polls
            window_reads, window_sql = watcher.reads - reads_before, job_reads
            # The job ends: every listener hears it from the same reads.
            await asyncio.to_thread(
                live.set_job, job_id, status="completed", completed=100, finished_at=time.time()
            )
            heard = await asyncio.gather(*listeners)
            polled = await asyncio.gather(*waiters)
            return [window_reads, window_sql, heard], polled, answered

    event.listen(engine, "before_cursor_execute", count)
    try:
        reads_before = watcher.reads
        started = time.monotonic()
        (window_reads, window_sql, heard), polled, answered = asyncio.run(main())
        elapsed = time.monotonic() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert answered == gets
    # Every read of the job was the watcher's: none per request (a read counts its SQL
    # when it starts and itself when it lands, so one may be in flight at the snapshot).
    assert window_sql - window_reads in (0, 1), (window_sql, window_reads)
    # One read per interval served 3 streams, 20 long-polls and 40 GETs: about as many
    # reads as intervals passed, far fewer than the 63 requests.
    assert window_reads <= elapsed / INTERVAL + 2 and window_reads < streams + polls + gets
    assert all(got[-1].name == "end" for got in heard)
    assert all(p["status"] == "completed" for p in polled)


@pytest.mark.e2e
def test_a_real_job_streams_in_order(stack):
    """API and worker processes: the events of a job the worker runs."""
    from tests.tiny_models import bench_texts

    job = stack.submit(bench_texts(3_000, seed=3), "tiny-embed")
    got: list[Received] = []

    def listen() -> None:
        with httpx.stream(
            "GET",
            f"{stack.url}/v1/jobs/{job['id']}/events",
            headers=stack.http.headers,
            timeout=120,
        ) as r:
            assert r.status_code == 200
            got.extend(read_stream(r, lambda out: False))

    listener = threading.Thread(target=listen)
    listener.start()
    stack.start_worker("tiny-embed")
    listener.join(240)
    assert not listener.is_alive(), "the stream did not end with the job"
    named = [e for e in got if e.name != "comment"]
    statuses = [e.data["status"] for e in named if e.name == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    order = ["queued", "in_progress", "completed"]
    assert statuses == sorted(statuses, key=order.index) and len(set(statuses)) == len(statuses)
    done = [e.data["counts"]["completed"] for e in named if e.name == "progress"]
    assert done == sorted(done) and done[-1] == 3_000 and len(done) >= 3
    assert named[-1].name == "end" and named[-1].data["counts"]["completed"] == 3_000


def test_a_plain_status_get_is_answered_before_routing_with_the_routes_bytes(cfg, api, alice, bob):
    from types import SimpleNamespace

    from api.auth import CALLER_STATE
    from api.job_watch import job_watcher
    from api.status_fast_path import StatusFastPath
    from api.status_pacing import StatusPacer
    from core.db import read_session
    from core.store.tenants import caller_for_key

    body = {"model": "tiny-embed", "inputs": [{"input": "a"}, {"input": "b"}]}
    job_id = api.post("/v1/jobs", json=body, headers=alice).json()["id"]
    fast = api.get(f"/v1/jobs/{job_id}", headers=alice)
    routed = api.get(f"/v1/jobs/{job_id}", params={"wait": 0}, headers=alice)  # the route's
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"

    with read_session(cfg.database_url) as session:
        callers = {
            name: caller_for_key(session=session, key=h["Authorization"].split()[1])
            for name, h in (("alice", alice), ("bob", bob))
        }
    passed_on: list[str] = []

    async def route(scope, receive, send) -> None:  # what FastAPI would do next
        passed_on.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")

    async def ask(method: str, path: str, query: bytes, caller: str) -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        state = SimpleNamespace(job_watcher=watcher, status_pacer=pacer)
        fast_path = StatusFastPath(route, state)
        scope = {
            "type": "http", "method": method, "path": path, "query_string": query,
            "headers": [], "state": {CALLER_STATE: callers[caller]},
        }  # fmt: skip
        await fast_path(scope, None, send)
        return sent

    watcher = job_watcher(cfg.database_url, INTERVAL)
    pacer = StatusPacer(per_second=0, burst=1, max_wait=0)

    async def main() -> None:
        sent = await ask("GET", f"/v1/jobs/{job_id}", b"", "alice")
        assert sent[0]["status"] == 200 and sent[1]["body"] == fast.content
        for method, path, query, caller in [
            ("GET", f"/v1/jobs/{job_id}", b"wait=5", "alice"),  # a long-poll
            ("GET", f"/v1/jobs/{job_id}", b"", "bob"),  # another tenant's job: the route's 404
            ("GET", "/v1/jobs/job_nope", b"", "alice"),
            ("GET", f"/v1/jobs/{job_id}/events", b"", "alice"),
            ("POST", f"/v1/jobs/{job_id}", b"", "alice"),
        ]:
            assert await ask(method, path, query, caller) == []
        await watcher.close()

    asyncio.run(main())
    assert passed_on == [
        f"GET /v1/jobs/{job_id}?wait=5",
        f"GET /v1/jobs/{job_id}?",
        "GET /v1/jobs/job_nope?",
        f"GET /v1/jobs/{job_id}/events?",
        f"POST /v1/jobs/{job_id}?",
    ]
