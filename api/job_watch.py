"""One database read per watched job per interval, shared by every listener of that job in
this API process: server-sent event streams and long-polls alike.

The first listener of a job starts an asyncio task that reads the job (in a worker thread)
once per interval and publishes what it read; every other listener of the job waits on
that task's snapshots instead of reading for itself. The task stops at the first tick
after its last listener has left, and stops reading (but keeps answering) once the job
has ended. With `sluice api --workers N` each process has its own watcher.

A status answer is never older than one interval: a listener that finds the latest read
older than that (the next read is late, or hangs on a database going down) waits for the
next read, and answers what it brings, its error included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from anyio import from_thread, to_thread

from api.views import change_signature
from core import states
from core.db import read_session
from core.errors import ServiceUnavailable
from core.store.jobs import get_job
from core.tables import Job

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long a status answer waits for a read to replace one older than an interval, before
# it answers 503: a read can hang while the database goes down.
FRESH_READ_TIMEOUT_SECONDS = 5.0


@dataclass
class Snapshot(Generic[T]):
    """One read of a job: its row (None: no such job), a version that grows by one each
    time the job's signature changes, and when it was read (monotonic clock)."""

    value: T | None
    version: int
    read_at: float
    # Renderings of this read that every listener shares (api.job_events fills it).
    memo: dict[str, Any] = field(default_factory=dict)


class _Watch(Generic[T]):
    """The state of one watched job: its listeners, latest read, and the reading task."""

    def __init__(self) -> None:
        self.listeners = 0
        self.latest: Snapshot[T] | None = None
        self.error: BaseException | None = None  # the latest read's failure, if it failed
        self.changed = asyncio.Event()  # set (and replaced) on each new version or error
        self.landed = asyncio.Event()  # set (and replaced) when any read lands or fails
        self.task: asyncio.Task[None] | None = None
        self.generation = 0  # publish() counts here, so an older read cannot land after it

    def announce(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def land(self) -> None:
        self.landed.set()
        self.landed = asyncio.Event()


class Listener(Generic[T]):
    """One listener's view of a watched job."""

    def __init__(self, watch: _Watch[T], is_final: Callable[[T | None], bool]) -> None:
        self._watch = watch
        self._is_final = is_final

    @property
    def latest(self) -> Snapshot[T]:
        """The latest successful read; raises the read's error if the latest read failed."""
        if self._watch.error is not None:
            raise self._watch.error
        assert self._watch.latest is not None  # listen() waited for the first read
        return self._watch.latest

    async def fresh(self, max_age: float, timeout: float) -> Snapshot[T]:
        """The latest read if it is at most max_age seconds old (or the job had ended),
        else the next read's; ServiceUnavailable if none lands within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.latest
            if time.monotonic() - snapshot.read_at <= max_age or self._is_final(snapshot.value):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceUnavailable("the database is slow to answer; retry later")
            landed = self._watch.landed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(landed.wait(), remaining)

    async def next(
        self, after_version: int, timeout: float, *, ride_out_errors: bool = False
    ) -> Snapshot[T] | None:
        """The first snapshot newer than after_version, or None after timeout seconds; a
        failed read raises its error, unless ride_out_errors (then it waits for a read
        that succeeds)."""
        deadline = time.monotonic() + timeout
        while True:
            watch = self._watch
            if watch.error is not None and not ride_out_errors:
                raise watch.error
            snapshot = watch.latest
            if snapshot is not None and snapshot.version > after_version:
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            changed = watch.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)


class JobWatcher(Generic[T]):
    """Watches jobs for their listeners: read(job_id) once per interval per job (in a thread),
    a new version when signature(row) changes, no more reads once final(row) holds."""

    def __init__(
        self,
        *,
        read: Callable[[str], T | None],
        signature: Callable[[T], Hashable],
        final: Callable[[T], bool],
        interval: float,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self._read, self._signature, self._final = read, signature, final
        self.interval = interval
        # Hears, for each listener, whether it joined a watch already reading (a hit).
        self._on_lookup = on_lookup
        self._watches: dict[str, _Watch[T]] = {}
        # Over the process's life: database reads made, and listeners that joined a watch
        # already reading, so shared its reads instead of making one (the status path's
        # cache hits).
        self.reads = 0
        self.hits = 0

    @property
    def watched(self) -> int:
        """How many jobs have a reading task now."""
        return len(self._watches)

    @property
    def listeners(self) -> int:
        """How many listeners wait on any job now."""
        return sum(w.listeners for w in self._watches.values())

    @contextlib.asynccontextmanager
    async def listen(self, job_id: str) -> AsyncIterator[Listener[T]]:
        """Listen to a job for the length of the block; entered once the job has been read
        at least once (raising that read's error if it failed)."""
        watch = self._watches.get(job_id)
        hit = watch is not None
        if watch is None:
            watch = self._watches[job_id] = _Watch()
            watch.task = asyncio.create_task(self._run(job_id, watch), name=f"watch {job_id}")
        else:
            self.hits += 1
        if self._on_lookup is not None:
            self._on_lookup(hit)
        watch.listeners += 1
        try:
            while watch.latest is None and watch.error is None:
                await watch.changed.wait()
            listener = Listener(watch, self._is_final)
            listener.latest  # noqa: B018 - raises the first read's error
            yield listener
        finally:
            watch.listeners -= 1

    async def current(self, job_id: str) -> Snapshot[T]:
        """The job as last read, at most one interval ago (by a running watch, or by a
        read made now)."""
        async with self.listen(job_id) as listener:
            return await listener.fresh(self.interval, FRESH_READ_TIMEOUT_SECONDS)

    def publish(self, job_id: str, value: T) -> None:
        """What a write of this process (a cancel) committed, shown to the job's listeners
        at once; a read already under way, which may predate the write, is dropped. From a
        route's worker thread, it runs on the event loop before it returns."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a sync route's worker thread: the watches live on the loop
            from_thread.run_sync(self.publish, job_id, value)
            return
        watch = self._watches.get(job_id)
        if watch is not None:
            watch.generation += 1
            self._publish(watch, value)

    async def close(self) -> None:
        """Stop every reading task (at shutdown)."""
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watches.clear()

    def _publish(self, watch: _Watch[T], value: T | None) -> None:
        previous = watch.latest
        version = 0 if previous is None else previous.version
        if previous is None or self._sig(previous.value) != self._sig(value):
            version += 1
        watch.latest = Snapshot(value=value, version=version, read_at=time.monotonic())
        changed = watch.error is not None or previous is None or version != previous.version
        watch.error = None
        if changed:
            watch.announce()

    def _sig(self, value: T | None) -> Hashable:
        return None if value is None else self._signature(value)

    async def _run(self, job_id: str, watch: _Watch[T]) -> None:
        try:
            while True:
                snapshot = watch.latest
                if snapshot is None or not self._is_final(snapshot.value) or watch.error:
                    await self._read_into(job_id, watch)
                await asyncio.sleep(self.interval)
                if watch.listeners <= 0:
                    return
        finally:
            if self._watches.get(job_id) is watch:
                del self._watches[job_id]
            if watch.latest is None and watch.error is None:
                # Cancelled before the first read landed: wake whoever waits for it.
                watch.error = ServiceUnavailable("the API is shutting down")
                watch.announce()

    async def _read_into(self, job_id: str, watch: _Watch[T]) -> None:
        generation = watch.generation
        try:
            value = await to_thread.run_sync(self._read, job_id)
        except Exception as exc:  # a database down: listeners see the error, reads go on
            self.reads += 1
            log.warning("reading job %s failed: %s", job_id, exc)
            watch.error = exc
            watch.announce()
            watch.land()
            return
        self.reads += 1
        if watch.generation == generation:
            self._publish(watch, value)
        elif watch.latest is not None:  # a write published meanwhile is newer: keep it,
            watch.latest.read_at = time.monotonic()  # as fresh as this read
        watch.land()

    def _is_final(self, value: T | None) -> bool:
        return value is None or self._final(value)


def _read_job(database_url: str, job_id: str) -> Job | None:
    with read_session(database_url) as session:
        return get_job(session=session, tenant_id=None, job_id=job_id)


def job_watcher(
    database_url: str, interval: float, on_lookup: Callable[[bool], None] | None = None
) -> JobWatcher[Job]:
    """The watcher of an API process: any tenant's job by id (routes check the tenant),
    a new version when its status or counts change, no reads once it has ended."""
    return JobWatcher(
        read=partial(_read_job, database_url),
        signature=change_signature,
        final=lambda job: job.status in states.JOB_TERMINAL,
        interval=interval,
        on_lookup=on_lookup,
    )
