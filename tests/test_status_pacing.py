"""The status pacer with a fake clock: a burst passes at once, then reads are spaced at the
rate, a turn too far off is refused without taking a place, tenants are paced apart, and
an unpaced setting never waits."""

from __future__ import annotations

import pytest

from api.status_pacing import StatusPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_reads_are_spaced_at_the_rate():
    clock = Clock()
    pacer = StatusPacer(per_second=100, burst=5, max_wait=1.0, clock=clock)
    waits = [pacer.turn("t") for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.01, 0.02, 0.03])


def test_a_steady_poller_under_the_rate_never_waits():
    clock = Clock()
    pacer = StatusPacer(per_second=10, burst=1, max_wait=1.0, clock=clock)
    for _ in range(50):
        assert pacer.turn("t") == 0.0
        clock.now += 0.1


def test_the_admitted_rate_over_time_is_the_configured_rate():
    """200 clients asking back to back: each asks again once its wait is over; over 10 s
    the reads answered are the burst plus rate x time."""
    clock = Clock()
    pacer = StatusPacer(per_second=1500, burst=200, max_wait=2.0, clock=clock)
    due_at = [clock.now] * 200  # when each client asks next
    admitted = 0
    end = clock.now + 10
    while True:
        i = min(range(200), key=due_at.__getitem__)
        if due_at[i] >= end:
            break
        clock.now = due_at[i]
        wait = pacer.turn("t")
        assert wait is not None and wait <= 2.0
        admitted += clock.now + wait <= end
        due_at[i] = clock.now + wait + 0.001  # answered, then asks again at once
    assert admitted == pytest.approx(200 + 1500 * 10, rel=0.01)


def test_a_turn_too_far_off_is_refused_and_takes_no_place():
    clock = Clock()
    pacer = StatusPacer(per_second=10, burst=1, max_wait=0.25, clock=clock)
    assert [pacer.turn("t") for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert pacer.turn("t") is None  # 0.3 s away
    assert pacer.turn("t") is None  # the refusal did not push the queue further
    assert pacer.retry_after("t") == 1
    clock.now += 0.1
    assert pacer.turn("t") == pytest.approx(0.2)


def test_tenants_are_paced_apart():
    clock = Clock()
    pacer = StatusPacer(per_second=10, burst=1, max_wait=5, clock=clock)
    for _ in range(10):
        pacer.turn("noisy")
    assert pacer.turn("quiet") == 0.0


def test_zero_rate_is_unpaced():
    pacer = StatusPacer(per_second=0, burst=1, max_wait=0, clock=Clock())
    assert all(pacer.turn("t") == 0.0 for _ in range(1000))


def test_forgotten_tenants_are_pruned():
    clock = Clock()
    pacer = StatusPacer(per_second=1000, burst=1, max_wait=1, clock=clock)
    pacer.PRUNE_AT = 10
    for i in range(10):
        pacer.turn(f"t{i}")
    clock.now += 1
    pacer.turn("new")
    assert len(pacer._due) == 1
