"""Error answers quote bounded input, in-process on both databases: a 1 MB model name, a
long id, a long metadata key or query parameter name come back cut to a few hundred
characters, with their length said."""

from __future__ import annotations

import orjson

from core.errors import SHOWN_CHARS, shown
from tests.test_files_api import _upload

MB = 1 << 20
# What an answer may weigh, whatever was sent: the envelope with bounded message and param.
MAX_ANSWER_BYTES = 6000


def _bounded(r, status: int) -> dict:
    assert r.status_code == status, r.text[:500]
    assert len(r.content) < MAX_ANSWER_BYTES, len(r.content)
    return r.json()["error"]


def test_shown_cuts_long_values_and_says_their_length():
    assert shown("tiny-embed") == "'tiny-embed'"
    long = shown("m" * MB)
    assert long == f"'{'m' * SHOWN_CHARS}'... ({MB} characters)"
    assert shown(12345) == "'12345'"


def test_a_1mb_model_name_is_not_echoed(api, alice):
    body = {"model": "m" * MB, "inputs": [{"input": "x"}]}
    error = _bounded(api.post("/v1/jobs", json=body, headers=alice), 400)
    assert error["code"] == "unknown_model"
    assert f"({MB} characters)" in error["message"]


def test_a_long_job_or_file_id_is_not_echoed(api, alice):
    long_id = "j" * 60_000
    for path in (
        f"/v1/jobs/{long_id}",
        f"/v1/jobs/{long_id}/results",
        f"/v1/jobs/{long_id}/detail",
        f"/v1/files/{long_id}",
        f"/v1/batches/{long_id}",
    ):
        error = _bounded(api.get(path, headers=alice), 404)
        assert "(60000 characters)" in error["message"], path


def test_a_long_metadata_key_or_query_name_is_cut_in_param(api, alice):
    body = {"model": "tiny-embed", "inputs": [{"input": "x"}], "metadata": {"k" * 100_000: 5}}
    error = _bounded(api.post("/v1/jobs", json=body, headers=alice), 422)
    assert len(error["param"]) < 400
    error = _bounded(api.get("/v1/jobs", params={"q" * 30_000: "1"}, headers=alice), 400)
    assert error["code"] == "unknown_parameter" and "(30000 characters)" in error["message"]


def test_a_batch_file_naming_a_1mb_model_is_not_echoed(api, alice):
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "m" * MB, "input": "x"},
    }
    f = _upload(api, alice, orjson.dumps(line) + b"\n").json()
    body = {"input_file_id": f["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
    error = _bounded(api.post("/v1/batches", json=body, headers=alice), 400)
    assert f"({MB} characters)" in error["message"]
