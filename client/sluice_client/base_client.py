"""What Client and AsyncClient share besides the plans they send: the configuration, the
headers of every request, and the httpx client that carries them."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx

from sluice_client.attempts import Attempts
from sluice_client.config import INLINE_MAX_BYTES, INLINE_MAX_ITEMS, ClientConfig
from sluice_client.plans import Plan

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)


class BaseClient(Generic[HttpT]):
    """A sluice API, a key, and the httpx client (sync or async) that calls it."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = 60.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        inline_max_items: int = INLINE_MAX_ITEMS,
        inline_max_bytes: int = INLINE_MAX_BYTES,
        http_client: HttpT | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            inline_max_items=inline_max_items,
            inline_max_bytes=inline_max_bytes,
        )
        self._headers = self.config.headers()
        # A caller's own httpx client (proxies, transports, a test client) is used as it
        # is: requests are made to full URLs with the key's header added to each.
        self._owns_http = http_client is None
        self._http: HttpT = http_client if http_client is not None else self._new_http(timeout)

    def _new_http(self, timeout: float | None) -> HttpT:
        """The httpx client made when the caller gave none."""
        raise NotImplementedError

    def _attempts(self, plan: Plan[Any]) -> Attempts:
        """A fresh count of attempts at a plan, sent with this client's headers."""
        return Attempts(plan, self.config, self._headers)
