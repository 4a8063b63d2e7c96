"""Each key's `last used` time, written at most once a minute per key and process (and the
row changed at most once a minute whatever the processes: the update is conditional), in
the background: a request never waits for the write, nor fails with it."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from core.db import write_session
from core.store.api_keys import touch_key

log = logging.getLogger(__name__)
LAST_USED_EVERY_SECONDS = 60.0


class LastUsed:
    """Notes key uses; writes a key's last use when its last write is `every` seconds old.
    Memory is bounded: at most `size` keys are remembered (then forgotten all at once, which
    costs one early write per key)."""

    def __init__(
        self, database_url: str, every: float = LAST_USED_EVERY_SECONDS, size: int = 10_000
    ) -> None:
        self.database_url, self.every, self.size = database_url, every, size
        self._next_write: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def note(self, key_id: str) -> None:
        """A request used this key (called on the event loop)."""
        now = time.time()
        due = self._next_write.get(key_id)
        if due is not None and now < due:
            return
        if len(self._next_write) >= self.size:
            self._next_write.clear()
        self._next_write[key_id] = now + self.every
        task = asyncio.get_running_loop().create_task(self._write(key_id, now))
        self._writes.add(task)  # held, or the loop may drop it half-way
        task.add_done_callback(self._writes.discard)

    async def _write(self, key_id: str, now: float) -> None:
        try:
            await run_in_threadpool(self._touch, key_id, now)
        except SQLAlchemyError as exc:  # the next use after `every` tries again
            log.warning("could not record the last use of key %s: %s", key_id, exc)

    def _touch(self, key_id: str, now: float) -> None:
        with write_session(self.database_url) as session:
            touch_key(session=session, key_id=key_id, now=now, every=self.every)

    async def close(self) -> None:
        """Wait for the writes in flight (at shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
