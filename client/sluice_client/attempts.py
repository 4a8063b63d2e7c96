"""The attempts at one plan, whichever client sends them: the request of each, and after a
failure how long to wait before the next, or the typed error to raise. Answers 429 and 503
are retried after the server's Retry-After; broken connections where a second attempt is
harmless after a jittered backoff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sluice_client.config import ClientConfig
from sluice_client.errors import APIConnectionError, APITimeoutError, error_from_response
from sluice_client.plans import Plan
from sluice_client.retry import RETRY_STATUSES, may_resend


def connection_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    """The client's error for a transport failure."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} in time ({exc})", code="timeout")
    return APIConnectionError(f"cannot reach {url}: {exc}", code="connection_error")


class Attempts:
    """The attempts at one plan so far, and the decision after each failed one."""

    def __init__(self, plan: Plan[Any], config: ClientConfig, headers: Mapping[str, str]) -> None:
        self.plan, self.config, self.headers = plan, config, headers
        self.made = 0

    def request(
        self, http: httpx.Client | httpx.AsyncClient, upload_body: Any = None
    ) -> httpx.Request:
        """The next attempt's request (an upload's body made by the caller's client)."""
        self.made += 1
        return self.plan.build(http, self.config.base_url, self.headers, upload_body)

    def wait_after_transport_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before sending again after a broken connection; raises
        APIConnectionError when the request may not be sent again."""
        delay = None
        if self.plan.replayable and may_resend(exc, idempotent=self.plan.safe_to_resend):
            delay = self.config.retry.delay(self.made, None)
        if delay is None:
            raise connection_error(exc, self.config.base_url) from exc
        return delay

    def wait_after_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> float:
        """Seconds to wait before sending again after an error answer; raises its typed
        error unless it is a 429 or 503 that may be retried within the policy."""
        error = error_from_response(status, body, headers)
        delay = None
        if status in RETRY_STATUSES and self.plan.replayable:
            delay = self.config.retry.delay(self.made, error.retry_after)
        if delay is None:
            raise error
        return delay
