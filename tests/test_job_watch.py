"""The job watcher with plain data for jobs: one read per job per tick whatever the number of
listeners, versions in order, no reads after the end or after the last listener, errors
passed on or ridden out, and a published write never overtaken by an older read."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from api.job_watch import JobWatcher

INTERVAL = 0.01


@dataclass(frozen=True)
class FakeJob:
    """A job as plain data: what the watcher reads."""

    status: str
    done: int


class Jobs:
    """A store of plain jobs that counts its reads per id (and can fail or block them)."""

    def __init__(self, **jobs: FakeJob) -> None:
        self.jobs = dict(jobs)
        self.reads: dict[str, int] = {}
        self.fail = 0  # the next this many reads raise
        self.gate: threading.Event | None = None  # reads wait on it while set here

    def read(self, job_id: str) -> FakeJob | None:
        self.reads[job_id] = self.reads.get(job_id, 0) + 1
        job = self.jobs.get(job_id)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database down")
        return job


def _watcher(jobs: Jobs, on_read=None) -> JobWatcher[FakeJob]:
    def read(job_id: str) -> FakeJob | None:
        job = jobs.read(job_id)
        if on_read is not None:
            on_read(job_id)
        return jobs.jobs.get(job_id) if on_read is not None else job

    return JobWatcher(
        read=read,
        signature=lambda j: (j.status, j.done),
        final=lambda j: j.status == "completed",
        interval=INTERVAL,
    )


def test_many_listeners_share_one_read_per_tick():
    jobs = Jobs(a=FakeJob("in_progress", 0))

    def advance(job_id: str) -> None:  # every read finds the job further on
        job = jobs.jobs[job_id]
        jobs.jobs[job_id] = FakeJob("in_progress", job.done + 1)

    watcher = _watcher(jobs, on_read=advance)
    listeners = 50

    async def listen() -> list[int]:
        seen: list[int] = []
        async with watcher.listen("a") as listener:
            snapshot = listener.latest
            while snapshot.value.done < 10:
                newer = await listener.next(snapshot.version, 5)
                assert newer is not None
                seen.append(newer.value.done)
                snapshot = newer
        return seen

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(listen() for _ in range(listeners)))

    seen = asyncio.run(main())
    for one in seen:  # each saw the counts grow, never go back
        assert one == sorted(one) and one[-1] >= 10
    # Ten reads (and a tick's worth of slack) served fifty listeners, not 50 x 10.
    assert jobs.reads["a"] <= 12
    assert watcher.reads == jobs.reads["a"]
    assert watcher.hits >= listeners - 1


def test_the_watch_stops_after_its_last_listener_and_after_the_end():
    jobs = Jobs(a=FakeJob("in_progress", 1))
    watcher = _watcher(jobs)

    async def main() -> None:
        async with watcher.listen("a") as listener:
            assert watcher.watched == 1 and watcher.listeners == 1
            jobs.jobs["a"] = FakeJob("completed", 2)
            snapshot = await listener.next(listener.latest.version, 5)
            assert snapshot is not None and snapshot.value.status == "completed"
            reads = jobs.reads["a"]
            await asyncio.sleep(INTERVAL * 10)
            assert jobs.reads["a"] == reads, "an ended job is not read again"
        assert watcher.listeners == 0
        await asyncio.sleep(INTERVAL * 5)
        assert watcher.watched == 0, "the watch stops at the tick after its last listener"

    asyncio.run(main())


def test_a_missing_job_is_read_once_and_is_none():
    jobs = Jobs()
    watcher = _watcher(jobs)

    async def main() -> None:
        assert (await watcher.current("nope")).value is None
        await asyncio.sleep(INTERVAL * 5)

    asyncio.run(main())
    assert jobs.reads == {"nope": 1}


def test_a_failed_read_raises_for_a_request_and_is_ridden_out_by_a_stream():
    jobs = Jobs(a=FakeJob("in_progress", 1))
    jobs.fail = 1
    watcher = _watcher(jobs)

    async def main() -> None:
        with pytest.raises(ConnectionError):
            await watcher.current("a")
        await asyncio.sleep(INTERVAL * 5)  # that watch ends with its listener
        async with watcher.listen("a") as listener:
            first = listener.latest
            jobs.fail = 3
            jobs.jobs["a"] = FakeJob("in_progress", 2)
            newer = await listener.next(first.version, 5, ride_out_errors=True)
            assert newer is not None and newer.value.done == 2
        assert jobs.fail == 0, "the failures happened and were ridden out"

    asyncio.run(main())


def test_a_published_write_is_not_overtaken_by_an_older_read():
    jobs = Jobs(a=FakeJob("in_progress", 1))
    watcher = _watcher(jobs)

    async def main() -> None:
        async with watcher.listen("a") as listener:
            first = listener.latest
            gate = jobs.gate = threading.Event()  # the next read holds the old row
            await asyncio.sleep(INTERVAL * 3)
            reads = jobs.reads["a"]
            jobs.jobs["a"] = FakeJob("cancelling", 1)  # a cancel commits
            watcher.publish("a", jobs.jobs["a"])
            published = await listener.next(first.version, 5)
            assert published is not None and published.value.status == "cancelling"
            jobs.gate = None
            gate.set()  # the old read lands now, and is dropped
            while jobs.reads["a"] < reads + 2:
                await asyncio.sleep(INTERVAL)
            assert listener.latest.value.status == "cancelling"
            assert listener.latest.version == published.version

    asyncio.run(main())


def test_a_read_older_than_an_interval_is_not_answered_while_the_next_hangs():
    """A database going down can hang the next read: status answers wait for it, then
    answer its error, rather than serve the last read however old it grows."""
    jobs = Jobs(a=FakeJob("in_progress", 1))
    watcher = _watcher(jobs)

    async def scenario() -> None:
        async with watcher.listen("a"):  # keeps the watch reading
            assert (await watcher.current("a")).value == FakeJob("in_progress", 1)
            gate = jobs.gate = threading.Event()  # the next read hangs ...
            jobs.fail = 1  # ... and then fails
            await asyncio.sleep(INTERVAL * 5)
            reads_before = jobs.reads["a"]
            answer = asyncio.create_task(watcher.current("a"))
            await asyncio.sleep(INTERVAL * 5)
            assert not answer.done(), "a read older than an interval was answered"
            assert jobs.reads["a"] == reads_before  # one read, still hanging
            jobs.gate = None
            gate.set()
            with pytest.raises(ConnectionError):
                await answer

    asyncio.run(scenario())


def test_a_read_that_never_lands_answers_service_unavailable(monkeypatch):
    from api import job_watch
    from core.errors import ServiceUnavailable

    monkeypatch.setattr(job_watch, "FRESH_READ_TIMEOUT_SECONDS", INTERVAL * 5)
    jobs = Jobs(a=FakeJob("in_progress", 1))
    watcher = _watcher(jobs)

    async def scenario() -> None:
        async with watcher.listen("a"):
            gate = jobs.gate = threading.Event()
            await asyncio.sleep(INTERVAL * 5)
            try:
                with pytest.raises(ServiceUnavailable):
                    await watcher.current("a")
            finally:
                gate.set()

    asyncio.run(scenario())


def test_an_ended_job_is_answered_from_its_last_read_however_old():
    jobs = Jobs(a=FakeJob("completed", 3))
    watcher = _watcher(jobs)

    async def scenario() -> None:
        async with watcher.listen("a"):
            await asyncio.sleep(INTERVAL * 5)
            assert (await watcher.current("a")).value == FakeJob("completed", 3)
        assert jobs.reads["a"] == 1

    asyncio.run(scenario())
