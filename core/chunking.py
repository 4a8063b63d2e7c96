"""Cutting a job's items into chunks: a pure function."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import TypeVar

T = TypeVar("T")


def cut_chunks(items: Sequence[T], chunk_size: int) -> list[Sequence[T]]:
    """Split items into consecutive slices of at most chunk_size, sizes as even as possible.

    Even sizes keep the last chunk from being a tiny straggler that costs a whole
    dispatch round for a handful of items.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    n = len(items)
    if n == 0:
        return []
    count = -(-n // chunk_size)
    base, extra = divmod(n, count)
    out: list[Sequence[T]] = []
    start = 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        out.append(items[start : start + size])
        start += size
    return out


# What an item costs a chunk besides its length: its special tokens, its result line and
# its share of the loop's per-row work, in units of the sort key (tokens or characters).
ITEM_COST = 8


def cut_by_cost(
    items: Sequence[T], costs: Sequence[int], count: int, max_items: int | None = None
) -> list[Sequence[T]]:
    """Split items into `count` consecutive slices of about equal total cost, none empty:
    fewer where an item costs more than a share (it gets a slice of its own), more where a
    slice holds over max_items (it is cut evenly again).

    A piece of a length-sorted window cut by count alone puts its longest items in a chunk
    that runs many times longer than its shortest one (10x on a mix of dictionary entries
    and fortunes); equal cost keeps every chunk near the compute target, so no chunk holds
    a small job back for longer than the rest.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    if len(costs) != len(items):
        raise ValueError("one cost per item")
    n = len(items)
    if n == 0:
        return []
    prefix = list(accumulate(costs, initial=0))
    bounds = [0]
    for k in range(1, count):
        # the cut nearest k/count of the total; one that falls on the last cut is dropped
        target = prefix[-1] * k / count
        j = bisect_left(prefix, target)
        if j > 0 and target - prefix[j - 1] < prefix[j] - target:
            j -= 1
        if bounds[-1] < j < n:
            bounds.append(j)
    bounds.append(n)
    out: list[Sequence[T]] = []
    for start, end in pairwise(bounds):
        piece = items[start:end]
        out.extend(
            cut_chunks(piece, max_items) if max_items and len(piece) > max_items else [piece]
        )
    return out


def bucket_chunks(
    items: Sequence[T],
    lengths: Sequence[int],
    *,
    chunk_size: int,
    window: int,
    max_items: int | None = None,
) -> list[tuple[int, list[int]]]:
    """Length bucketing: (bucket, positions) per chunk, in dispatch order.

    Items are taken in windows of `window` consecutive positions; within a window they are
    sorted by length (stably) and cut into as many chunks as `chunk_size` items each would
    make, of about equal cost (length + ITEM_COST each; at most max_items items), so each
    chunk holds items of similar length, pads little, and computes about as long as the
    others. Each chunk's positions come back in input order, so a window's results can be
    merged back into input order with memory bounded by the window.
    """
    if len(lengths) != len(items):
        raise ValueError("one length per item")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    window = max(window, chunk_size)
    out: list[tuple[int, list[int]]] = []
    for bucket, start in enumerate(range(0, len(items), window)):
        positions = range(start, min(start + window, len(items)))
        by_length = sorted(positions, key=lambda p: lengths[p])
        costs = [max(0, lengths[p]) + ITEM_COST for p in by_length]
        count = -(-len(by_length) // chunk_size)
        for piece in cut_by_cost(by_length, costs, count, max_items):
            out.append((bucket, sorted(piece)))
    return out


def chunk_size_for(
    per_item_seconds: float | None, *, default: int, target_seconds: float, max_items: int
) -> int:
    """Items per chunk: enough for about target_seconds of compute, so the fixed cost of a
    chunk (dispatch, a few transactions, encoding) stays a small share; never fewer than
    the model's configured chunk_size, never more than max_items."""
    if not per_item_seconds or per_item_seconds <= 0:
        return default
    return int(min(max_items, max(default, target_seconds / per_item_seconds)))
