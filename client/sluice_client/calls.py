"""One API call as both clients send it, and what to do after each attempt: return the
answer, wait and send it again, or raise a typed error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from sluice_client.errors import APIConnectionError, APITimeoutError, SluiceError
from sluice_client.retry import RETRY_STATUSES, RetryPolicy, may_resend

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass
class Call:
    """A request: method, path, query, and a JSON, bytes or streamed body.

    A streamed body is made by `body()`, once per attempt; `replayable=False` says it can be
    made only once (an iterator the caller gave), so the call is never sent twice."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    body: Callable[[], Any] | None = None
    replayable: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: Any = httpx.USE_CLIENT_DEFAULT
    idempotent: bool | None = None

    @property
    def safe_to_resend(self) -> bool:
        """Whether the server may see this call twice without harm."""
        return self.method in IDEMPOTENT_METHODS if self.idempotent is None else self.idempotent

    def build(
        self, http: httpx.Client | httpx.AsyncClient, base_url: str, headers: Mapping[str, str]
    ) -> httpx.Request:
        """The httpx request of one attempt, to the API at base_url, with the client's
        headers."""
        return http.build_request(
            self.method,
            base_url + self.path,
            params=self.params,
            json=self.json,
            content=self.body() if self.body is not None else self.content,
            headers={**headers, **self.headers},
            timeout=self.timeout,
        )


def connection_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    """The client's error for a transport failure."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} in time ({exc})", code="timeout")
    return APIConnectionError(f"cannot reach {url}: {exc}", code="connection_error")


def delay_after_transport_error(
    call: Call, exc: httpx.TransportError, retry: int, policy: RetryPolicy
) -> float | None:
    """Seconds to wait before resending after a broken connection, or None to raise."""
    if not call.replayable or not may_resend(exc, idempotent=call.safe_to_resend):
        return None
    return policy.delay(retry, None)


def delay_after_error(
    call: Call, error: SluiceError, retry: int, policy: RetryPolicy
) -> float | None:
    """Seconds to wait before resending after an error answer, or None to raise: only
    429 and 503 are retried, after the server's Retry-After."""
    if error.status not in RETRY_STATUSES or not call.replayable:
        return None
    return policy.delay(retry, error.retry_after)
