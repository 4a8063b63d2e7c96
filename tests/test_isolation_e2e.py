"""Tenant isolation end to end, against a live API and worker on both databases: tenant A
has finished and unfinished jobs (inline and from a file, with failed items and webhook
deliveries), files, and batches with their input, output and error files. Tenant B tries
every route on each of A's objects: every answer is a 404 whose body is the body of a
missing id of the same shape (so B cannot even tell A's ids exist), admin-only parameters
are a 403 that is the same whether the tenant exists or not, B's listings hold nothing of
A's, and afterwards all of A's objects are as A left them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from core.db import read_session
from core.tables import Job
from tests.conftest import make_key
from tests.stack import TERMINAL, Stack
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + base64.b64encode(b"the isolation test webhook secret").decode()
LONG = "word " * 5000  # longer than tiny-embed takes: fails with truncate off
EMBED = "/v1/embeddings"


@dataclass
class Owned:
    """Tenant A's objects, by kind, and what each looked like to A before B's attempts."""

    jobs: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seen: dict[str, bytes] = field(default_factory=dict)


def _batch_line(cid: str, body: dict) -> bytes:
    return orjson.dumps({"custom_id": cid, "method": "POST", "url": EMBED, "body": body}) + b"\n"


@pytest.fixture
def live(cfg, tmp_path) -> Iterator[Stack]:
    hooked = cfg.model_copy(update={"webhook_allow_private": True, "webhook_poll_seconds": 0.2})
    stack = Stack(hooked, tmp_path / "logs", make_key(hooked.database_url, "tenant-a"))
    stack.start_api()
    yield stack
    stack.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    yield r
    r.close()


def _ok(r: httpx.Response, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _make_objects(a: Stack, receiver: Receiver) -> Owned:
    """A's objects: run to their end by a worker, then more left unfinished."""
    owned = Owned()
    hook = {"url": receiver.url, "secret": SECRET}
    a.start_worker("tiny-embed")
    inline = a.submit(
        ["first", LONG, "third"], "tiny-embed", params={"truncate": False}, webhook=hook
    )
    jobs_file = a.upload(b"".join(orjson.dumps({"input": f"t {i}"}) + b"\n" for i in range(5)))
    from_file = a.submit_file(jobs_file["id"], "tiny-embed")
    lines = [_batch_line(f"r{i}", {"model": "tiny-embed", "input": f"x {i}"}) for i in range(4)]
    lines.append(_batch_line("bad", {"model": "tiny-embed", "input": LONG, "dimensions": 99999}))
    batch_file = a.upload(b"".join(lines), purpose="batch")
    batch = _ok(
        a.http.post(
            "/v1/batches",
            json={
                "input_file_id": batch_file["id"],
                "endpoint": EMBED,
                "completion_window": "24h",
                "on_invalid": "skip",
                "webhook": hook,
            },
        )
    )
    for job_id in (inline["id"], from_file["id"]):
        assert a.wait_until(job_id, lambda j: j["status"] in TERMINAL)["status"] == "completed"
    batch = a.wait_until(batch["id"], lambda j: j["status"] in TERMINAL)
    assert batch["status"] == "completed", batch
    receiver.wait_for(2, timeout=120)  # the job's and the batch's end, delivered
    done = _ok(a.http.get(f"/v1/batches/{batch['id']}"))
    assert done["output_file_id"] and done["error_file_id"], done
    for proc in a.workers:  # what follows stays unfinished
        a.kill(proc)
    a.workers.clear()
    queued = a.submit(["waits"], "tiny-embed")
    pending_batch = _ok(
        a.http.post(
            "/v1/batches",
            json={"input_file_id": batch_file["id"], "endpoint": EMBED, "completion_window": "24h"},
        )
    )
    owned.jobs = [inline["id"], from_file["id"], queued["id"], batch["id"], pending_batch["id"]]
    owned.batches = [batch["id"], pending_batch["id"]]
    owned.files = [
        jobs_file["id"],
        batch_file["id"],
        done["output_file_id"],
        done["error_file_id"],
    ]
    return owned


def _job_routes(job_id: str) -> list[tuple[str, str, dict]]:
    formats = [{"format": f} for f in ("jsonl", "csv", "parquet")]
    return [
        ("GET", f"/v1/jobs/{job_id}", {}),
        ("GET", f"/v1/jobs/{job_id}?wait=1", {}),
        *[("GET", f"/v1/jobs/{job_id}/results", {"params": p}) for p in formats],
        *[
            ("GET", f"/v1/jobs/{job_id}/results", {"params": {**p, "only": "failed"}})
            for p in formats
        ],
        ("GET", f"/v1/jobs/{job_id}/detail", {}),
        ("GET", f"/v1/jobs/{job_id}/errors", {}),
        ("GET", f"/v1/jobs/{job_id}/webhook_deliveries", {}),
        ("GET", f"/v1/jobs/{job_id}/events", {}),
        ("POST", f"/v1/jobs/{job_id}/cancel", {}),
        ("POST", f"/v1/jobs/{job_id}/retry", {}),
    ]


def _batch_routes(batch_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/batches/{batch_id}", {}),
        ("POST", f"/v1/batches/{batch_id}/cancel", {}),
        ("GET", f"/v1/batches/{batch_id}/webhook_deliveries", {}),
    ]


def _file_routes(file_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/files/{file_id}", {}),
        ("GET", f"/v1/files/{file_id}/content", {}),
        ("DELETE", f"/v1/files/{file_id}", {}),
        ("POST", "/v1/jobs", {"json": {"model": "tiny-embed", "input_file_id": file_id}}),
        (
            "POST",
            "/v1/batches",
            {"json": {"input_file_id": file_id, "endpoint": EMBED, "completion_window": "24h"}},
        ),
    ]


def _missing(object_id: str) -> str:
    """An id of the same kind and length that nobody has."""
    kind, _, rest = object_id.partition("_")
    return f"{kind}_{'0' * len(rest)}"


def _call(client: httpx.Client, method: str, url: str, extra: dict) -> httpx.Response:
    return client.request(method, url, timeout=30, **extra)


def _with_id(value: object, object_id: str) -> object:
    """A request's URL or body with the object's id swapped for a missing one."""
    return orjson.loads(
        orjson.dumps(value).replace(object_id.encode(), _missing(object_id).encode())
    )


def _same_as_missing(b: httpx.Client, object_id: str, method: str, url: str, extra: dict):  # type: ignore[no-untyped-def]
    theirs = _call(b, method, url, extra)
    missing_url = url.replace(object_id, _missing(object_id))
    missing = _call(b, method, missing_url, _with_id(extra, object_id))  # type: ignore[arg-type]
    what = f"{method} {url} {extra}"
    assert theirs.status_code == 404, (what, theirs.status_code, theirs.text)
    assert missing.status_code == 404, (what, missing.text)
    assert theirs.headers["content-type"] == missing.headers["content-type"], what
    normalized = theirs.content.replace(object_id.encode(), _missing(object_id).encode())
    assert normalized == missing.content, (what, theirs.text, missing.text)
    return theirs


def _snapshot(a: Stack, owned: Owned) -> dict[str, bytes]:
    """What A sees of each object (status reads and file bytes), to compare afterwards."""
    seen = {}
    for job_id in owned.jobs:
        job = _ok(a.http.get(f"/v1/jobs/{job_id}"))
        seen[job_id] = orjson.dumps({k: job[k] for k in ("status", "counts", "cancelled_at")})
        seen[job_id + "/results"] = a.http.get(f"/v1/jobs/{job_id}/results").content
    for file_id in owned.files:
        seen[file_id] = a.http.get(f"/v1/files/{file_id}/content").content
        assert seen[file_id], file_id
    return seen


def test_tenant_b_finds_nothing_of_tenant_a(live, receiver, cfg):
    a = live
    owned = _make_objects(a, receiver)
    before = _snapshot(a, owned)
    b_key = make_key(cfg.database_url, "tenant-b")
    with httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {b_key}"}) as b:
        tried = 0
        for job_id in owned.jobs:
            for method, url, extra in _job_routes(job_id):
                _same_as_missing(b, job_id, method, url, extra)
                tried += 1
        for batch_id in owned.batches:
            for method, url, extra in _batch_routes(batch_id):
                _same_as_missing(b, batch_id, method, url, extra)
                tried += 1
        for file_id in owned.files:
            for method, url, extra in _file_routes(file_id):
                _same_as_missing(b, file_id, method, url, extra)
                tried += 1
        assert tried == 5 * 14 + 2 * 3 + 4 * 5

        # Listings: nothing of A's, in any purpose or status.
        listed = set()
        for path, params in [
            ("/v1/jobs", {}),
            ("/v1/batches", {}),
            ("/v1/files", {}),
            ("/v1/files", {"purpose": "batch_output"}),
            ("/v1/files", {"purpose": "batch"}),
            ("/v1/jobs", {"status": "completed"}),
        ]:
            listed |= {x["id"] for x in _ok(b.get(path, params=params))["data"]}
        assert not listed & {*owned.jobs, *owned.files}

        # Admin-only: a tenant key gets 403 insufficient_scope, the same for a tenant that
        # exists (by name or id) as for one that does not.
        a_tenant = _ok(a.http.get("/v1/me"))
        refusals = []
        for path in ("/v1/jobs", "/v1/dashboard/events"):
            for tenant in (a_tenant["tenant_name"], a_tenant["tenant_id"], "no-such-tenant"):
                r = b.get(path, params={"tenant": tenant}, timeout=30)
                assert r.status_code == 403, (path, tenant, r.text)
                assert r.json()["error"]["code"] == "insufficient_scope"
                refusals.append(r.content)
        assert len(set(refusals)) == 1

        # The same Idempotency-Key as A's request makes B its own job, never A's.
        body = {"model": "tiny-embed", "inputs": [{"input": "keyed"}]}
        mine = _ok(a.http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"}), 201)
        theirs = _ok(b.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k"}), 201)
        assert theirs["id"] != mine["id"] and theirs["tenant_id"] != mine["tenant_id"]
        owned.jobs.append(mine["id"])

    # A's objects are as A left them: nothing cancelled, retried or deleted by B.
    after = _snapshot(a, owned)
    assert {k: after[k] for k in before} == before
    with read_session(cfg.database_url) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.retry_of.is_not(None))) == 0
    assert _ok(a.http.get(f"/v1/jobs/{owned.jobs[2]}"))["status"] == "queued"
