"""The batch planner, with plain lists."""

import random

import pytest

from models.planner import padding_efficiency, plan_batches


def test_every_item_planned_exactly_once():
    rng = random.Random(3)
    lengths = [rng.randint(1, 300) for _ in range(1000)]
    batches = plan_batches(lengths, 2048)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))


def test_padded_cost_within_budget_unless_single_item():
    rng = random.Random(4)
    lengths = [rng.randint(1, 512) for _ in range(500)] + [5000]
    for batch in plan_batches(lengths, 2048):
        cost = len(batch) * max(lengths[i] for i in batch)
        assert cost <= 2048 or len(batch) == 1


def test_over_long_item_gets_its_own_batch():
    batches = plan_batches([10, 9000, 12], 1000)
    assert [1] in batches


def test_sorted_plan_pads_far_less_than_arrival_order():
    rng = random.Random(5)
    lengths = [rng.choice([8, 12, 20, 200, 250]) for _ in range(2000)]
    sorted_plan = plan_batches(lengths, 4096)
    arrival = [list(range(i, min(i + 32, 2000))) for i in range(0, 2000, 32)]
    assert padding_efficiency(lengths, sorted_plan) > 0.95
    assert padding_efficiency(lengths, arrival) < 0.5


def test_max_items_caps_batch_size():
    assert all(len(b) <= 4 for b in plan_batches([1] * 10, 1000, max_items=4))


def test_longest_first_and_empty():
    assert plan_batches([], 100) == []
    assert plan_batches([3, 50, 7], 1000)[0][0] == 1
    with pytest.raises(ValueError):
        plan_batches([1], 0)
