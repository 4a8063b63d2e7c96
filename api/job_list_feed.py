"""Live job lists, shared: per API process, one reader per scope (one tenant, or every
tenant for an admin key) reads that scope's live jobs once per interval while anyone
watches it, and every watcher of the scope gets the same snapshot when it changes.

A thousand dashboards open on one tenant cost one database read a second per process, not
a thousand. Scopes are keyed by tenant, so a watcher only ever sees its own scope's
snapshots; the number of watchers per process is bounded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

# A scope: the tenant id whose jobs are watched, or None for every tenant's.
Scope = str | None
# What a read returns: a signature of what watchers see change, and the snapshot's bytes.
Read = Callable[[Scope], tuple[Hashable, bytes]]


@dataclass
class _Watched:
    """One scope's shared state: its latest snapshot and who waits for the next."""

    watchers: int = 0
    version: int = 0
    payload: bytes = b""
    signature: Hashable = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class JobListFeed:
    """Snapshots of live job lists, one reader per watched scope."""

    def __init__(self, read: Read, *, interval: float, max_watchers: int) -> None:
        self._read = read
        self.interval = interval
        self.max_watchers = max_watchers
        self._scopes: dict[Scope, _Watched] = {}

    @property
    def watchers(self) -> int:
        """How many streams watch any scope in this process."""
        return sum(w.watchers for w in self._scopes.values())

    def is_full(self) -> bool:
        """Whether this process takes no more watchers."""
        return self.watchers >= self.max_watchers

    async def _poll(self, scope: Scope, watched: _Watched) -> None:
        """Read the scope every interval while it has watchers; wake them on a change."""
        while watched.watchers > 0:
            try:
                signature, payload = await run_in_threadpool(self._read, scope)
            except Exception as exc:  # the database is down: watchers keep their last view
                log.warning("reading live jobs failed: %s", type(exc).__name__)
            else:
                if watched.version == 0 or signature != watched.signature:
                    watched.signature, watched.payload = signature, payload
                    watched.version += 1
                    woken, watched.changed = watched.changed, asyncio.Event()
                    woken.set()
            await asyncio.sleep(self.interval)

    def _join(self, scope: Scope) -> _Watched:
        watched = self._scopes.get(scope)
        if watched is None:
            watched = self._scopes[scope] = _Watched()
        watched.watchers += 1
        if watched.reader is None or watched.reader.done():
            watched.reader = asyncio.create_task(self._poll(scope, watched))
        return watched

    def _leave(self, scope: Scope, watched: _Watched) -> None:
        watched.watchers -= 1
        if watched.watchers <= 0 and self._scopes.get(scope) is watched:
            del self._scopes[scope]
            if watched.reader is not None:
                watched.reader.cancel()

    async def watch(
        self, scope: Scope, *, heartbeat: float, lasting: float
    ) -> AsyncIterator[tuple[int, bytes] | None]:
        """(version, snapshot) now and whenever it changes, None when `heartbeat` seconds
        pass without one; ends after `lasting` seconds (the client reconnects)."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + lasting
        watched = self._join(scope)
        try:
            seen = 0
            while (left := ends - loop.time()) > 0:
                if watched.version > seen:
                    seen = watched.version
                    yield seen, watched.payload
                    continue
                try:
                    await asyncio.wait_for(watched.changed.wait(), timeout=min(heartbeat, left))
                except TimeoutError:
                    yield None
        finally:
            self._leave(scope, watched)
