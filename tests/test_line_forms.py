"""The line forms a file job takes ({custom_id?, input}, or the {id?, text} alias), with
errors that name the real problem and failed items that keep the line's id; and gzip
uploads, decompressed as they stream in, bounded against bombs (in-process, both
databases, the ingest run as a worker runs it)."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.contracts.items import ItemInvalid, ItemLimits, check_line, native_item
from core.gunzip import RATIO_AFTER_BYTES, GunzipStream
from tests.conftest import make_key, worker_ctx
from tests.test_files_api import _counts, _upload
from tests.test_ingest import _claim, _file_job, _job
from worker.ingest import run_ingest

LIMITS = ItemLimits(max_input_chars=1000, max_custom_id_chars=20)


@pytest.mark.parametrize(
    ("line", "item"),
    [
        ({"custom_id": "a", "input": "x"}, {"custom_id": "a", "input": "x"}),
        ({"input": "x"}, {"custom_id": None, "input": "x"}),
        ({"id": "a", "text": "x"}, {"custom_id": "a", "input": "x"}),
        ({"id": 7, "text": "x"}, {"custom_id": "7", "input": "x"}),
        ({"text": "x"}, {"custom_id": None, "input": "x"}),
        ({"id": "a", "input": "x"}, {"custom_id": "a", "input": "x"}),
    ],
)
def test_native_and_alias_lines_give_the_same_item(line, item):
    assert native_item(line) == item
    assert check_line("embed", line, LIMITS) == (item["custom_id"], "x")


@pytest.mark.parametrize(
    ("line", "code", "says"),
    [
        ({"id": "a"}, "missing_input", 'line has no "input" (or its alias "text")'),
        ({"custom_id": "a", "inputs": "x"}, "missing_input", "it has 'inputs'"),
        ({"id": "a", "text": "x", "label": 1}, "unknown_field", "unknown field 'label'"),
        ({"input": "x", "text": "y"}, "conflicting_fields", 'both "input" and its alias "text"'),
        ({"custom_id": "a", "id": "b", "input": "x"}, "conflicting_fields", '"id"'),
        ({"id": True, "text": "x"}, "invalid_custom_id", "custom_id must be a string"),
        ({"id": 1.5, "text": "x"}, "invalid_custom_id", "custom_id must be a string"),
    ],
)
def test_a_bad_line_is_named_for_what_is_wrong(line, code, says):
    with pytest.raises(ItemInvalid) as caught:
        check_line("embed", line, LIMITS)
    assert caught.value.code == code
    assert says in caught.value.message
    assert "unknown field 'id'" not in caught.value.message


def test_an_alias_file_runs_and_bad_lines_keep_their_ids(cfg, api, alice, tiny_runner):
    lines = [orjson.dumps({"id": i, "text": f"text {i}"}) for i in range(6)]
    lines[2] = b'{"id": "two", "txt": "typo"}'
    lines[4] = b'{"custom_id": "four"}'
    job = _file_job(api, alice, b"\n".join(lines) + b"\n", on_invalid="skip")
    ((job_id, token),) = _claim(cfg)
    assert run_ingest(worker_ctx(cfg, tiny_runner), job_id, token) == "queued"
    row = _job(cfg, job_id)
    assert (row.total, row.failed) == (6, 2)
    assert [(e["line"], e["code"]) for e in row.errors["data"]] == [
        (3, "missing_input"),
        (5, "missing_input"),
    ]
    failed = api.get(f"/v1/jobs/{job['id']}/results?only=failed", headers=alice).content
    got = [orjson.loads(x) for x in failed.splitlines()]
    assert [(x["index"], x["custom_id"], x["error"]["code"]) for x in got] == [
        (2, "two", "missing_input"),
        (4, "four", "missing_input"),
    ]
    assert "'txt'" in got[0]["error"]["message"]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _jsonl(n: int) -> bytes:
    return b"".join(orjson.dumps({"id": i, "text": f"text number {i}"}) + b"\n" for i in range(n))


def test_a_gzip_upload_is_stored_decompressed(cfg, api, alice):
    data = _jsonl(3000)
    r = api.post(
        "/v1/files",
        files={"file": ("in.jsonl.gz", _gzip(data[:40_000]) + _gzip(data[40_000:]))},
        data={"purpose": "jobs"},
        headers=alice,
    )
    assert r.status_code == 200, r.text
    f = r.json()
    assert (f["lines"], f["bytes"], f["filename"]) == (3000, len(data), "in.jsonl")
    assert api.get(f"/v1/files/{f['id']}/content", headers=alice).content == data


@pytest.mark.parametrize(
    ("mangle", "status", "code"),
    [
        (lambda gz: gz[: len(gz) // 2], 400, "invalid_gzip"),  # cut short
        (lambda gz: gz[:20] + b"\xff" * 20 + gz[40:], 400, "invalid_gzip"),  # corrupt
        (lambda gz: gz + b"trailing", 400, "invalid_gzip"),
        (lambda gz: gz + b"\0" * 512, 200, None),  # padding, as gzip takes it
    ],
)
def test_a_broken_gzip_upload_is_refused_and_nothing_kept(cfg, mangle, status, code):
    with TestClient(create_app(cfg)) as api:
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'gus')}"}
        r = _upload(api, headers, mangle(_gzip(_jsonl(20_000))))
    assert r.status_code == status, r.text
    if code is not None:
        assert r.json()["error"]["code"] == code
        assert _counts(cfg) == (0, 0)


def test_gzip_bombs_are_refused_by_ratio_and_by_size(cfg):
    line = b'{"input": "a"}\n'
    bomb = zlib.compress(line * (2 * RATIO_AFTER_BYTES // len(line)), 9, wbits=31)
    small = cfg.model_copy(update={"max_file_bytes": 100_000})
    with TestClient(create_app(cfg)) as api:
        headers = {"Authorization": f"Bearer {make_key(cfg.database_url, 'hal')}"}
        r = _upload(api, headers, bomb)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "gzip_ratio_too_high"
    with TestClient(create_app(small)) as api:
        r = _upload(api, headers, _gzip(_jsonl(10_000)))
        assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
        assert "once decompressed" in r.json()["error"]["message"]
        encoded = api.post(
            "/v1/files",
            content=b"anything",
            headers={**headers, "Content-Encoding": "gzip", "Content-Type": "multipart/form-data"},
        )
        assert encoded.status_code == 400
        assert encoded.json()["error"]["code"] == "unsupported_content_encoding"
    assert _counts(cfg) == (0, 0)


def test_decompression_holds_one_piece_at_a_time():
    stream = GunzipStream(max_ratio=1e9)
    pieces = list(stream.feed(_gzip(b"x" * (5 << 20))))
    assert len(pieces) >= 5 and max(map(len, pieces)) <= 1 << 20
    assert b"".join(pieces) == b"x" * (5 << 20)
    stream.finish()
