"""The shared live-list feed, with a counting read in place of the database: one read per
scope serves every watcher, scopes never mix, unchanged lists send nothing but
heartbeats, a failed read is survived, and a scope nobody watches is not read."""

from __future__ import annotations

import asyncio

from api.job_list_feed import JobListFeed


class CountingRead:
    """A read whose list changes on every call unless frozen; counts calls per scope."""

    def __init__(self) -> None:
        self.calls: dict[str | None, int] = {}
        self.frozen = False
        self.fail_next = False

    def __call__(self, scope: str | None) -> tuple[object, bytes]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database down")
        n = self.calls[scope] = self.calls.get(scope, 0) + 1
        version = 1 if self.frozen else n
        return (scope, version), f"{scope}:{version}".encode()


async def _take(feed: JobListFeed, scope: str | None, n: int, heartbeat: float = 30.0) -> list:
    """The first n items a watcher of the scope gets."""
    out: list = []
    async for item in feed.watch(scope, heartbeat=heartbeat, lasting=30.0):
        out.append(item)
        if len(out) == n:
            break
    return out


def test_watchers_of_one_scope_share_its_reads():
    read = CountingRead()

    async def main():
        feed = JobListFeed(read, interval=0.02, max_watchers=10)
        first, second = await asyncio.gather(_take(feed, "t1", 4), _take(feed, "t1", 4))
        return feed, first, second

    feed, first, second = asyncio.run(main())
    payloads = [p for _, p in first]
    assert all(p.startswith(b"t1:") for p in payloads)
    versions = [v for v, _ in first] + [v for v, _ in second]
    # each watcher saw increasing versions, and both saw the same snapshot per version
    assert [v for v, _ in first] == sorted({v for v, _ in first})
    both = {v for v, _ in first} & {v for v, _ in second}
    assert both and all(dict(first)[v] == dict(second)[v] for v in both)
    # one read per version (plus at most one before the reader was stopped), not one per
    # watcher
    assert read.calls["t1"] <= max(versions) + 1
    assert feed.watchers == 0


def test_scopes_are_kept_apart():
    read = CountingRead()

    async def main():
        feed = JobListFeed(read, interval=0.02, max_watchers=10)
        return await asyncio.gather(
            _take(feed, "alice", 3), _take(feed, "bob", 3), _take(feed, None, 3)
        )

    alice, bob, everyone = asyncio.run(main())
    assert all(p.startswith(b"alice:") for _, p in alice)
    assert all(p.startswith(b"bob:") for _, p in bob)
    assert all(p.startswith(b"None:") for _, p in everyone)


def test_an_unchanged_list_sends_one_snapshot_then_heartbeats():
    read = CountingRead()
    read.frozen = True

    async def main():
        feed = JobListFeed(read, interval=0.01, max_watchers=10)
        return await _take(feed, "t1", 3, heartbeat=0.1)

    snapshot, *rest = asyncio.run(main())
    assert snapshot == (1, b"t1:1") and rest == [None, None]
    assert read.calls["t1"] >= 3  # it kept reading; nothing changed, so nothing was sent


def test_a_failed_read_is_survived():
    read = CountingRead()
    read.fail_next = True

    async def main():
        feed = JobListFeed(read, interval=0.01, max_watchers=10)
        return await _take(feed, "t1", 2)

    (v1, p1), (v2, p2) = asyncio.run(main())
    assert (v1, v2) == (1, 2) and p1 == b"t1:1" and p2 == b"t1:2"


def test_a_scope_nobody_watches_is_not_read_and_watchers_are_bounded():
    read = CountingRead()

    async def main():
        feed = JobListFeed(read, interval=0.01, max_watchers=2)
        await _take(feed, "t1", 2)
        calls = read.calls["t1"]
        await asyncio.sleep(0.1)
        assert read.calls["t1"] == calls  # the reader stopped with its last watcher
        assert feed.watchers == 0 and not feed.is_full()
        watching = [feed.watch("t1", heartbeat=30, lasting=30) for _ in range(2)]
        for stream in watching:
            await anext(stream)
        assert feed.watchers == 2 and feed.is_full()
        for stream in watching:
            await stream.aclose()
        assert feed.watchers == 0

    asyncio.run(main())


def test_a_stream_ends_after_its_time():
    read = CountingRead()
    read.frozen = True

    async def main():
        feed = JobListFeed(read, interval=0.01, max_watchers=10)
        return [item async for item in feed.watch("t1", heartbeat=0.05, lasting=0.2)]

    items = asyncio.run(main())
    assert items[0] == (1, b"t1:1") and set(items[1:]) == {None}
