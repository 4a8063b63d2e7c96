"""The weighted fair share choice (core.fair_share), simulated with plain data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.fair_share import Candidate, choose, due, settle


@dataclass
class Sim:
    """Backlogged jobs of tenants on one model, served one dispatch at a time."""

    weights: dict[str, int]
    backlog: dict[str, int]  # job id (named after its tenant) -> chunks left
    priority: dict[str, int] = field(default_factory=dict)
    tags: dict[str, float] = field(default_factory=dict)
    served_at: dict[str, float] = field(default_factory=dict)
    clock: float = 0.0
    tick: int = 0

    def step(self) -> str | None:
        candidates = [
            Candidate(
                job_id=job,
                tenant_id=job.split("/")[0],
                priority=self.priority.get(job, 0),
                weight=self.weights[job.split("/")[0]],
                tag=self.tags.get(job.split("/")[0]),
                job_served_at=self.served_at.get(job),
            )
            for job, left in self.backlog.items()
            if left > 0
        ]
        choice = choose(candidates, self.clock)
        if choice is None:
            return None
        picked = choice.candidate
        self.clock, self.tags[picked.tenant_id] = choice.clock, choice.tag
        self.tick += 1
        self.served_at[picked.job_id] = self.tick
        self.backlog[picked.job_id] -= 1
        return picked.tenant_id

    def run(self, n: int) -> Counter[str]:
        return Counter(t for t in (self.step() for _ in range(n)) if t is not None)


def test_weights_three_to_one_give_three_to_one_within_five_percent():
    sim = Sim(weights={"a": 3, "b": 1}, backlog={"a/1": 10_000, "b/1": 10_000})
    served = sim.run(4000)
    assert abs(served["a"] / served["b"] - 3.0) <= 0.15, served


def test_many_jobs_of_one_tenant_do_not_widen_its_share():
    backlog = {f"a/{i}": 1000 for i in range(10)} | {"b/1": 1000}
    sim = Sim(weights={"a": 1, "b": 1}, backlog=backlog)
    served = sim.run(1000)
    assert served["a"] == served["b"] == 500
    jobs_of_a = Counter(j for j, left in sim.backlog.items() if j.startswith("a/") and left < 1000)
    assert len(jobs_of_a) == 10  # and a's own jobs take turns


def test_a_late_tenant_gets_its_share_within_one_round_and_no_more():
    sim = Sim(weights={"a": 3, "b": 1, "c": 1}, backlog={"a/1": 10_000, "b/1": 10_000})
    sim.run(2000)  # a and b have been served a long time; c was never served
    sim.backlog["c/1"] = 10_000
    first_round = [sim.step() for _ in range(5)]  # one round: 3 + 1 + 1
    assert "c" in first_round
    served = sim.run(5000)
    # From then on 3:1:1, within 5%; c gets no credit for the time it was away.
    assert abs(served["a"] / served["c"] - 3.0) <= 0.15, served
    assert abs(served["b"] / served["c"] - 1.0) <= 0.05, served


def test_a_tenant_back_from_idle_gets_no_credit_for_the_idle_time():
    sim = Sim(weights={"a": 1, "b": 1}, backlog={"a/1": 10, "b/1": 10_000})
    sim.run(20)  # a runs dry after 10; b goes on alone for a while
    sim.run(1000)
    sim.backlog["a/2"] = 10_000
    served = sim.run(100)
    assert served["a"] in (50, 51), served  # even shares again, not a burst for a


def test_priority_comes_first_and_is_charged_to_its_tenants_share():
    sim = Sim(
        weights={"a": 1, "b": 3},
        backlog={"a/1": 1000, "a/urgent": 5, "b/1": 1000},
        priority={"a/urgent": 9},
    )
    first = [sim.step() for _ in range(5)]
    assert first == ["a"] * 5 and sim.backlog["a/urgent"] == 0
    # a went 5 turns ahead at weight 1: b's 15 turns at weight 3 come before a's next.
    assert [sim.step() for _ in range(15)] == ["b"] * 15
    served = sim.run(400)
    assert abs(served["b"] / served["a"] - 3.0) <= 0.15, served


def test_due_and_settle():
    assert due(None, 5.0) == 5.0 and due(2.0, 5.0) == 5.0 and due(7.0, 5.0) == 7.0
    new = Candidate("j", "t", 0, 4, None, None)
    assert (settle(new, 5.0, 5.0).clock, settle(new, 5.0, 5.0).tag) == (5.0, 5.25)
    ahead = Candidate("j", "t", 9, 1, 7.0, None)
    # Gone ahead by priority: the clock stays at the earliest due tag of the others.
    assert (settle(ahead, 5.0, 6.0).clock, settle(ahead, 5.0, 6.0).tag) == (6.0, 8.0)
    assert choose([], 1.0) is None
