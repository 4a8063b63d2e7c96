"""The batch planner: sort by length, cut micro-batches under a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], max_tokens: int, max_items: int | None = None
) -> list[list[int]]:
    """Group item positions into micro-batches whose padded cost stays within max_tokens.

    Items are sorted by length (longest first, so the first batch shows the peak memory
    at once); a batch's padded cost is `len(batch) * longest item in it`. An item longer
    than the budget gets a batch of its own. Returns positions into `lengths`.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for pos in order:
        length = max(1, lengths[pos])
        width = max(longest, length)
        full = max_items is not None and len(current) >= max_items
        if current and (width * (len(current) + 1) > max_tokens or full):
            batches.append(current)
            current, width = [], length
        current.append(pos)
        longest = width
    if current:
        batches.append(current)
    return batches


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens over padded tokens for a plan (1.0 means no padding)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return real / padded if padded else 1.0
