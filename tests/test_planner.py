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


def _plan_cost(lengths, plan, overhead):
    return sum(len(b) * max(lengths[i] for i in b) + overhead for b in plan)


def _cheapest_by_search(lengths, budget, overhead, max_items=None):
    """The least cost of any cut of the longest-first order, by trying every batch end."""
    widths = sorted((max(1, n) for n in lengths), reverse=True)
    best = [0] + [float("inf")] * len(widths)
    for i in range(1, len(widths) + 1):
        for j in range(i):
            rows = i - j
            fits = rows == 1 or (
                rows * widths[j] <= budget and (max_items is None or rows <= max_items)
            )
            if fits:
                best[i] = min(best[i], best[j] + rows * widths[j] + overhead)
    return best[-1]


def test_priced_batches_are_the_cheapest_plan():
    rng = random.Random(6)
    for _ in range(200):
        n = rng.randint(1, 60)
        lengths = [rng.choice([rng.randint(1, 30), rng.randint(1, 400)]) for _ in range(n)]
        budget = rng.choice([32, 256, 2048])
        overhead = rng.choice([0, 3, 32, 500])
        max_items = rng.choice([None, 2, 7])
        plan = plan_batches(lengths, budget, max_items, overhead_tokens=overhead)
        assert sorted(i for b in plan for i in b) == list(range(n))
        for batch in plan:
            widest = max(lengths[i] for i in batch)
            assert len(batch) == 1 or (
                len(batch) * max(1, widest) <= budget
                and (max_items is None or len(batch) <= max_items)
            )
        assert _plan_cost(lengths, plan, overhead) == _cheapest_by_search(
            lengths, budget, overhead, max_items
        )


def test_priced_batches_close_early_rather_than_pad():
    # Filling to the budget puts the 40 short items beside the long ones (width 100);
    # with a per-batch price below that padding, they get a batch of their own.
    lengths = [100] * 10 + [10] * 40
    filled = plan_batches(lengths, 5000)
    priced = plan_batches(lengths, 5000, overhead_tokens=32)
    assert len(filled) == 1
    assert [sorted(b) for b in priced] == [list(range(10)), list(range(10, 50))]
    assert padding_efficiency(lengths, priced) > padding_efficiency(lengths, filled)
    assert priced[0][0] == 0  # still longest first
    # A price above the padding keeps one batch.
    assert len(plan_batches(lengths, 5000, overhead_tokens=5000)) == 1
