"""Probe findings on uploads, in-process on both databases: inputs that once answered 500
are clear 400s, and nothing of the refused upload is kept."""

from __future__ import annotations

import pytest

from tests.test_files_api import _counts, _lines, _upload


@pytest.mark.parametrize("seconds", ["²", "٣٦٠٠", "7200.0", "-7200", "1" * 5000, ""])
def test_an_expiry_that_is_not_ascii_digits_is_a_400(api, alice, cfg, seconds):
    r = _upload(api, alice, _lines(2), **{"expires_after[seconds]": seconds})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "expires_after[seconds]"
    assert _counts(cfg) == (0, 0)


def test_a_boundary_over_256_characters_is_a_400(api, alice, cfg):
    boundary = "b" * 257
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        ).encode()
        + _lines(2)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = api.post(
        "/v1/files",
        content=body,
        headers={**alice, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_multipart"
    assert _counts(cfg) == (0, 0)


def test_a_boundary_of_256_characters_is_taken(api, alice):
    boundary = "b" * 256
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        ).encode()
        + _lines(2)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = api.post(
        "/v1/files",
        content=body,
        headers={**alice, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["lines"] == 2
