"""The files API in-process, on both databases: streamed upload with per-line checks,
listing, content, deletion, isolation, limits; and the directory storage."""

from __future__ import annotations

import gzip
import hashlib

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.db import read_session
from core.tables import File, FilePart
from tests.conftest import make_key
from tests.tiny_models import BENCH_DATA


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        orjson.dumps({"custom_id": f"c{i}", "input": f"text number {i}"}) + b"\n"
        for i in range(start, start + n)
    )


def _upload(api, headers, data: bytes, purpose: str = "batch", **fields):
    return api.post(
        "/v1/files",
        files={"file": ("in.jsonl", data, "application/jsonl")},
        data={"purpose": purpose, **fields},
        headers=headers,
    )


def _counts(cfg) -> tuple[int, int]:
    with read_session(cfg.database_url) as s:
        return (
            s.scalar(select(func.count()).select_from(File)),
            s.scalar(select(func.count()).select_from(FilePart)),
        )


def test_upload_list_get_content_delete(api, alice, cfg):
    with gzip.open(BENCH_DATA / "fortunes.jsonl.gz") as fh:
        corpus = [orjson.loads(x) for x in fh][:7000]
    data = b"".join(
        orjson.dumps({"custom_id": r["id"], "input": r["text"]}) + b"\n" for r in corpus
    )
    assert len(data) > 1 << 20  # more than one hand-off block
    r = _upload(api, alice, data)
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["object"] == "file" and f["status"] == "processed" and f["purpose"] == "batch"
    assert f["bytes"] == len(data) and f["lines"] == 7000
    assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["filename"] == "in.jsonl"
    assert 29 * 86400 < f["expires_at"] - f["created_at"] <= 30 * 86400

    got = api.get(f"/v1/files/{f['id']}/content", headers=alice)
    assert got.status_code == 200 and got.content == data
    assert api.get(f"/v1/files/{f['id']}", headers=alice).json() == f

    second = _upload(api, alice, _lines(5), purpose="jobs").json()
    page = api.get("/v1/files", params={"limit": 1}, headers=alice).json()
    assert [x["id"] for x in page["data"]] == [second["id"]] and page["has_more"] is True
    page2 = api.get(
        "/v1/files", params={"limit": 1, "after": page["last_id"]}, headers=alice
    ).json()
    assert [x["id"] for x in page2["data"]] == [f["id"]] and page2["has_more"] is False
    only = api.get("/v1/files", params={"purpose": "jobs"}, headers=alice).json()
    assert [x["id"] for x in only["data"]] == [second["id"]]

    gone = api.delete(f"/v1/files/{f['id']}", headers=alice)
    assert gone.status_code == 200 and gone.json() == {
        "id": f["id"],
        "object": "file",
        "deleted": True,
    }
    assert api.get(f"/v1/files/{f['id']}", headers=alice).status_code == 404
    assert api.get(f"/v1/files/{f['id']}/content", headers=alice).status_code == 404
    assert _counts(cfg) == (1, 1)  # only the second file and its one part remain


def test_files_are_private(api, alice, bob):
    f = _upload(api, alice, _lines(3)).json()
    for call in (
        lambda: api.get(f"/v1/files/{f['id']}", headers=bob),
        lambda: api.get(f"/v1/files/{f['id']}/content", headers=bob),
        lambda: api.delete(f"/v1/files/{f['id']}", headers=bob),
    ):
        r = call()
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert api.get("/v1/files", headers=bob).json()["data"] == []
    assert api.post("/v1/files", files={"file": ("x", b"{}\n")}).status_code == 401


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (b'{"input": "a"}\n{"input": "b"\n{"input": "c"}\n', "invalid_json", 2),
        (b'{"input": "a"}\n\n[1, 2]\n', "not_an_object", 3),
        (b'{"input": "a"}\n{"input": "\xff\xfe"}\n', "invalid_utf8", 2),
        (b"", "empty_file", None),
        (b"\n  \n", "empty_file", None),
        (b'{"input": "a"}\n' + b'{"input": "' + b"x" * 5000 + b'"}\n', "line_too_long", 2),
        (b"\x00\x01\x02binary" * 10, "invalid_json", 1),
        (b'{"input": "a"}\n' + b"[" * 1500 + b"]" * 1500 + b"\n", "invalid_json", 2),
        (b'{"input": "a"}\n{"input": "b", "n": 1e400}\n', "invalid_json", 2),  # infinity
        (b'{"input": "a"}\n{"input": "b"}{"input": "c"}\n', "invalid_json", 2),
    ],
)
def test_bad_files_are_refused_with_their_line(cfg, data, code, line):
    cfg = cfg.model_copy(update={"max_line_bytes": 4096})
    with TestClient(create_app(cfg)) as api:
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'carol')}"}
        r = _upload(api, headers, data)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert err["code"] == code
    if line is not None:
        assert err["details"] == {"line": line} and f"line {line}" in err["message"]
    assert _counts(cfg) == (0, 0)  # nothing kept


def test_bom_crlf_and_missing_final_newline_are_fine(api, alice):
    data = b'\xef\xbb\xbf{"input": "a"}\r\n{"input": "b"}\r\n\r\n{"input": "c"}'
    r = _upload(api, alice, data)
    assert r.status_code == 200, r.text
    assert r.json()["lines"] == 3


def test_upload_limits(cfg):
    cfg = cfg.model_copy(update={"max_file_bytes": 4096, "max_items_per_file_job": 10})
    with TestClient(create_app(cfg)) as api:
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'dave')}"}
        big = _upload(api, headers, _lines(200))
        assert big.status_code == 413, big.text
        many = _upload(api, headers, _lines(11))
        assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_items"
        bad = _upload(api, headers, _lines(2), purpose="fine-tune")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_purpose"
        ttl = _upload(api, headers, _lines(2), **{"expires_after[seconds]": "7200"}).json()
        assert ttl["expires_at"] - ttl["created_at"] == 7200
        short = _upload(api, headers, _lines(2), **{"expires_after[seconds]": "5"})
        assert short.status_code == 400
        not_multipart = api.post("/v1/files", content=_lines(2), headers=headers)
        assert not_multipart.status_code == 400
        assert not_multipart.json()["error"]["code"] == "expected_multipart"
        no_file = api.post("/v1/files", data={"purpose": "batch"}, headers=headers)
        assert no_file.status_code == 400
    assert _counts(cfg) == (1, 1)


def test_directory_storage(cfg, tmp_path):
    cfg = cfg.model_copy(update={"files_dir": tmp_path / "files"})
    with TestClient(create_app(cfg)) as api:
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'erin')}"}
        data = _lines(100)
        f = _upload(api, headers, data).json()
        assert (tmp_path / "files" / f"{f['id']}.jsonl").read_bytes() == data
        assert api.get(f"/v1/files/{f['id']}/content", headers=headers).content == data
        bad = _upload(api, headers, data + b"nope\n")
        assert bad.status_code == 400 and bad.json()["error"]["details"] == {"line": 101}
        assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [f"{f['id']}.jsonl"]
        api.delete(f"/v1/files/{f['id']}", headers=headers)
        assert list((tmp_path / "files").iterdir()) == []


def test_a_malformed_multipart_envelope_is_a_400(cfg, api, alice):
    """Found by the schemathesis fuzzing: python-multipart raised through (a 500)."""
    body = b"--b0undary\r\n[]--b0undary--\r\n"
    r = api.post(
        "/v1/files",
        content=body,
        headers={**alice, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_multipart"
    assert api.get("/v1/files", headers=alice).json()["data"] == []


def test_query_parameters_are_checked_and_405_lists_every_method(cfg, api, alice):
    r = api.get("/v1/files", params={"limt": 5}, headers=alice)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_parameter"
    assert r.json()["error"]["param"] == "limt"
    r = api.get("/v1/jobs?limit=1&limit=2", headers=alice)
    assert r.status_code == 400 and r.json()["error"]["code"] == "repeated_parameter"
    for url in ("/v1/batches?after=a%00", "/v1/jobs/job_%00", "/v1/files/file_%00/content"):
        r = api.get(url, headers=alice)  # PostgreSQL text holds no NUL: a 400, not a 500
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", url
    r = api.post(  # a NUL inside a JSON body reaches the database: refused there, a 400
        "/v1/batches",
        json={
            "input_file_id": "file_\u0000",
            "endpoint": "/v1/embeddings",
            "completion_window": "24h",
        },
        headers=alice,
    )
    assert r.status_code in (400, 404), r.text
    r = api.put("/v1/files", headers=alice)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"


def test_a_50_mb_single_line_is_refused_early(api, alice, cfg):
    """The default line limit (12 MiB) refuses it with its line number; nothing is kept."""
    data = b'{"input": "' + b"x" * (50 << 20) + b'"}\n'
    r = _upload(api, alice, data)
    assert r.status_code == 400 and r.json()["error"]["code"] == "line_too_long"
    assert r.json()["error"]["details"] == {"line": 1}
    assert _counts(cfg) == (0, 0)


def test_huge_numbers_in_inputs_are_invalid_input_not_a_crash(api, alice):
    for value in (1e308, 12345678901234567890123456789, -0.0):
        body = {"model": "tiny-embed", "inputs": [{"input": value}]}
        r = api.post("/v1/jobs", json=body, headers=alice)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", r.text
