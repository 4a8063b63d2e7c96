"""The pure webhook rules: Standard Webhooks signatures (against the spec's example and the
`standardwebhooks` package), secret and URL checks, the SSRF guard, event bodies, and the
retry schedule."""

from __future__ import annotations

import base64
import ipaddress
import time
from pathlib import Path

import orjson
import pytest
from standardwebhooks import Webhook

from core.errors import InvalidInput
from core.request_counts import reported_counts
from core.webhooks.events import event_body, event_type, retry_at
from core.webhooks.signing import new_secret, secret_key, signature, signed_headers
from core.webhooks.targets import check_webhook, parse_endpoint, refusal

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_the_signature_of_the_specs_example():
    # The example of the Standard Webhooks specification (and its reference libraries).
    sig = signature(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_with_the_reference_library():
    body = b'{"type":"job.completed","data":{"id":"job_1"}}'
    headers = signed_headers(secret=SECRET, msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert Webhook(SECRET).verify(body, headers) == orjson.loads(body)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body + b" ", headers)


def test_secrets():
    assert len(secret_key(new_secret())) == 32
    assert secret_key(SECRET.rstrip("=")) == bytes(range(32))  # padding is optional
    for bad in (
        "",
        base64.b64encode(bytes(32)).decode(),  # no prefix
        "whsec_" + base64.b64encode(bytes(23)).decode(),  # too short
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # too long
        "whsec_not*base64!" + "A" * 40,
        "whsec_" + "A" * 10_000,
    ):
        with pytest.raises(InvalidInput) as exc:
            secret_key(bad)
        assert exc.value.code == "invalid_webhook_secret"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/x",
        "http:///nohost",
        "https://user:pw@example.com/",
        "https://example.com:99999/",
        "https://exa mple.com/",
        "https://example.com/\x00",
        "https://example.com/" + "a" * 2100,
        "https://example.com/\ud800",
    ],
)
def test_bad_urls(url):
    with pytest.raises(InvalidInput) as exc:
        parse_endpoint(url)
    assert exc.value.code == "invalid_webhook_url"


def test_endpoints():
    assert parse_endpoint("https://Example.com/h?x=1").port == 443
    assert parse_endpoint("http://example.com:8080/").port == 8080
    assert parse_endpoint("http://[2001:db8::1]/").host == "2001:db8::1"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:db8::1",
    ],
)
def test_refused_addresses(address):
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


def _resolver(table):
    def resolve(host, port):
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolve


def test_the_ssrf_guard_resolves_the_host():
    resolve = _resolver(
        {
            "hooks.example.com": ["93.184.216.34"],
            "rebound.example.com": ["93.184.216.34", "10.0.0.7"],
            "metadata.example.com": ["169.254.169.254"],
            "localhost": ["127.0.0.1", "::1"],
        }
    )
    ok = check_webhook("https://hooks.example.com/x", SECRET, allow_private=False, resolve=resolve)
    assert ok.url == "https://hooks.example.com/x" and ok.secret == SECRET
    for host in ("rebound.example.com", "metadata.example.com", "localhost"):
        with pytest.raises(InvalidInput) as exc:
            check_webhook(f"https://{host}/x", SECRET, allow_private=False, resolve=resolve)
        assert exc.value.code == "webhook_target_forbidden", host
    with pytest.raises(InvalidInput) as exc:
        check_webhook("https://nowhere.invalid/x", SECRET, allow_private=False, resolve=resolve)
    assert exc.value.code == "webhook_host_unresolvable"
    # allowed private targets are not resolved at all
    assert check_webhook("http://localhost:9/", SECRET, allow_private=True, resolve=resolve)
    with pytest.raises(InvalidInput) as exc:
        check_webhook("https://hooks.example.com/x", "whsec_short", allow_private=False)
    assert exc.value.code == "invalid_webhook_secret"


def test_event_names_counts_and_body():
    assert event_type(status="completed", is_batch=False) == "job.completed"
    assert event_type(status="expired", is_batch=True) == "batch.expired"
    with pytest.raises(ValueError):
        event_type(status="in_progress", is_batch=False)
    assert reported_counts(
        total=10, completed=4, failed=1, status="cancelled", has_error_file=True
    ) == {"total": 10, "completed": 4, "failed": 6}
    assert reported_counts(
        total=10, completed=4, failed=1, status="cancelled", has_error_file=False
    ) == {"total": 10, "completed": 4, "failed": 1}
    body = orjson.loads(
        event_body(
            msg_id="msg_1",
            kind="batch.completed",
            job_id="batch_1",
            is_batch=True,
            status="completed",
            counts={"total": 2, "completed": 2, "failed": 0},
            at=1700000000.5,
        )
    )
    assert body == {
        "id": "msg_1",
        "object": "event",
        "type": "batch.completed",
        "created_at": 1700000000,
        "timestamp": "2023-11-14T22:13:20.500000Z",
        "data": {
            "id": "batch_1",
            "object": "batch",
            "status": "completed",
            "counts": {"total": 2, "completed": 2, "failed": 0},
        },
    }


def test_retries_back_off_exponentially_with_jitter_then_give_up():
    day = 86400.0

    def delay(attempt, r, now=1000.0):
        at = retry_at(
            attempt=attempt, first_at=0.0, now=now, base=5, cap=3600, window=day, rand=lambda: r
        )
        return None if at is None else at - now

    assert [delay(n, 1.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert [delay(n, 0.0) for n in (1, 2, 3)] == [2.5, 5, 10]  # jitter: the upper half
    assert delay(30, 1.0) == 3600 and delay(10_000, 0.5) == 2700  # capped
    assert delay(12, 1.0, now=day - 100) is None  # past the window: give up
    assert delay(1, 1.0, now=day - 100) == 5
    # about 30 tries over a day before giving up
    now, tries = 0.0, 1
    while at := retry_at(attempt=tries, first_at=0, now=now, base=5, cap=3600, window=day):
        now, tries = at, tries + 1
    assert 25 <= tries <= 60 and now <= day


def test_the_readme_verifier_accepts_sluices_signature_and_nothing_else():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("Verifying an event") :]
    start = section.index("```python\n") + 10
    code = section[start : section.index("\n```", start)]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    verify = scope["verify"]
    body = b'{"type":"job.completed","data":{"id":"job_1"}}'
    headers = signed_headers(secret=SECRET, msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert verify(SECRET, body, headers) == orjson.loads(body)
    with pytest.raises(ValueError, match="signature"):
        verify(new_secret(), body, headers)
    with pytest.raises(ValueError, match="signature"):
        verify(SECRET, body.replace(b"job_1", b"job_2"), headers)
    old = signed_headers(secret=SECRET, msg_id="msg_1", timestamp=int(time.time()) - 600, body=body)
    with pytest.raises(ValueError, match="timestamp"):
        verify(SECRET, body, old)
