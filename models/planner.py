"""The batch planner: sort by length, cut micro-batches under a padded-token budget."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise


def plan_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_items: int | None = None,
    overhead_tokens: int | None = None,
) -> list[list[int]]:
    """Group item positions into micro-batches whose padded cost stays within max_tokens.

    Items are sorted by length (longest first, so the first batch shows the peak memory
    at once); a batch's padded cost is `len(batch) * longest item in it`. An item longer
    than the budget gets a batch of its own. Returns positions into `lengths`.

    Without overhead_tokens each batch is filled up to the budget (fewest batches). With
    it, the cuts minimise padded tokens plus overhead_tokens per batch: a batch's fixed
    cost (kernel launches, Python) priced in tokens, so a batch closes early where the
    next items are much shorter and padding them would cost more than one more batch.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    widths = [max(1, lengths[i]) for i in order]
    if overhead_tokens is None:
        cuts = _fill_cuts(widths, max_tokens, max_items)
    else:
        cuts = _cheapest_cuts(widths, max_tokens, max_items, overhead_tokens)
    return [order[a:b] for a, b in pairwise(cuts)]


def _fits(rows: int, width: int, max_tokens: int, max_items: int | None) -> bool:
    """Whether `rows` items padded to `width` make a batch (one item always does)."""
    if rows == 1:
        return True
    return rows * width <= max_tokens and (max_items is None or rows <= max_items)


def _fill_cuts(widths: Sequence[int], max_tokens: int, max_items: int | None) -> list[int]:
    """Batch boundaries (0, ..., n) filling each batch as far as the budget allows."""
    cuts = [0]
    for pos in range(1, len(widths)):
        if not _fits(pos - cuts[-1] + 1, widths[cuts[-1]], max_tokens, max_items):
            cuts.append(pos)
    if widths:
        cuts.append(len(widths))
    return cuts


def _cheapest_cuts(
    widths: Sequence[int], max_tokens: int, max_items: int | None, overhead: int
) -> list[int]:
    """Batch boundaries over widths sorted longest first that minimise padded tokens plus
    `overhead` per batch (dynamic programming over the end of each batch).

    A batch [j, i) costs (i - j) * widths[j] + overhead. Some optimal plan starts every
    batch either where a run of equal widths starts, or at the earliest start the budget
    allows for its end (a full batch): a batch that starts inside a run with room to
    spare could take the run's earlier items from the batch before it, which pays at
    least as much per item. So each end tries only those starts: O(n * runs in reach).
    """
    n = len(widths)
    if n == 0:
        return []
    run_starts = [p for p in range(n) if p == 0 or widths[p] != widths[p - 1]]
    best = [0] * (n + 1)
    start_of = [0] * (n + 1)
    lo = 0  # the earliest start a batch ending at i may have; it only moves right
    for i in range(1, n + 1):
        while not _fits(i - lo, widths[lo], max_tokens, max_items):
            lo += 1
        candidates = run_starts[bisect_left(run_starts, lo) : bisect_left(run_starts, i)]
        top = best[lo] + (i - lo) * widths[lo]
        arg = lo
        for j in candidates:
            cost = best[j] + (i - j) * widths[j]
            if cost < top:
                top, arg = cost, j
        best[i] = top + overhead
        start_of[i] = arg
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(start_of[cuts[-1]])
    return cuts[::-1]


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens over padded tokens for a plan (1.0 means no padding)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return real / padded if padded else 1.0
