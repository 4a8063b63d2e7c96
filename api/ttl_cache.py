"""A small per-process cache whose entries expire: what lets hundreds of clients poll one
job, or present one key, without a database round trip each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Values by key for `seconds`; at most `size` entries (emptied when full: rare, and
    cheaper than tracking recency). `on_lookup` hears whether each get found a value."""

    def __init__(
        self,
        seconds: float,
        size: int = 10_000,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.seconds, self.size, self.on_lookup = seconds, size, on_lookup
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._loading: dict[Hashable, asyncio.Future[V | None]] = {}

    def get(self, key: Hashable) -> V | None:
        """The value, if it was put less than `seconds` ago."""
        entry = self._entries.get(key)
        found = entry is not None and entry[0] >= time.monotonic()
        if self.on_lookup is not None:
            self.on_lookup(found)
        return entry[1] if found and entry is not None else None

    def put(self, key: Hashable, value: V) -> None:
        """Remember a value from now."""
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, value)

    def discard_where(self, predicate: Callable[[V], bool]) -> int:
        """Forget the values the predicate holds for (what a change made here has made
        stale); how many."""
        # A copy first: a route's thread may call this while the event loop puts entries.
        stale = [k for k, (_, value) in list(self._entries.items()) if predicate(value)]
        for key in stale:
            self._entries.pop(key, None)
        return len(stale)

    async def load_once(self, key: Hashable, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """load()'s answer for a key, shared by every caller that asks while it runs: when
        an entry expires under many requests, one of them reads it again, not all."""
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(load())
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)
