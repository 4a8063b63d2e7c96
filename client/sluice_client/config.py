"""What both clients are configured with: where the API is, the key, timeouts, retries, and
how large a job may be before its inputs go up as a file instead of inline."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import httpx

from sluice_client.retry import RetryPolicy

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# The API decodes a body over 1 MiB on a worker thread, one at a time, and refuses more
# than its SLUICE_MAX_INPUTS_PER_JOB (100,000 by default) inline: larger jobs go up as files.
INLINE_MAX_BYTES = 1 << 20
INLINE_MAX_ITEMS = 10_000
# Seconds a long-poll may take beyond its `wait` before the client gives up on the answer.
LONG_POLL_GRACE = 30.0


@dataclass(frozen=True)
class ClientConfig:
    """Settings shared by Client and AsyncClient."""

    base_url: str
    api_key: str | None
    timeout: float | None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    inline_max_items: int = INLINE_MAX_ITEMS
    inline_max_bytes: int = INLINE_MAX_BYTES

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float | None,
        max_retries: int,
        max_retry_wait: float,
        inline_max_items: int,
        inline_max_bytes: int,
    ) -> ClientConfig:
        """Arguments, else SLUICE_API_URL and SLUICE_API_KEY, else the local default."""
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        url = base_url or os.environ.get("SLUICE_API_URL") or DEFAULT_BASE_URL
        return cls(
            base_url=url.rstrip("/"),
            api_key=api_key if api_key is not None else os.environ.get("SLUICE_API_KEY"),
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries, max_wait=max_retry_wait),
            inline_max_items=inline_max_items,
            inline_max_bytes=inline_max_bytes,
        )

    def inline_limits(self, upload: bool | None) -> tuple[int, int]:
        """(items, bytes) a job may send inline: the limits, or none with upload=False."""
        if upload is False:
            return sys.maxsize, sys.maxsize
        return self.inline_max_items, self.inline_max_bytes

    def headers(self) -> dict[str, str]:
        """Headers of every request (no Authorization without a key: the API says 401)."""
        headers = {"User-Agent": "sluice-client/0.1"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def long_poll_timeout(self, wait: float) -> httpx.Timeout:
        """The timeout of a request the server may hold for `wait` seconds."""
        return httpx.Timeout(self.timeout, read=wait + LONG_POLL_GRACE)

    def upload_timeout(self) -> httpx.Timeout:
        """The timeout of an upload: the server's answer comes after the whole body."""
        return httpx.Timeout(self.timeout, read=None)
