"""Cutting a job's items into chunks: a pure function."""

from __future__ import annotations

from collections.abc import Sequence
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


def split_by_size(
    positions: Sequence[int], sizes: Sequence[int], max_size: int
) -> list[Sequence[int]]:
    """Consecutive runs of positions whose sizes add up to at most max_size each (an item
    larger than that alone)."""
    out: list[Sequence[int]] = []
    start, total = 0, 0
    for k, p in enumerate(positions):
        if k > start and total + sizes[p] > max_size:
            out.append(positions[start:k])
            start, total = k, 0
        total += sizes[p]
    if start < len(positions):
        out.append(positions[start:])
    return out


def bucket_chunks(
    items: Sequence[T],
    lengths: Sequence[int],
    *,
    chunk_size: int,
    window: int,
    sizes: Sequence[int] | None = None,
    max_size: int | None = None,
) -> list[tuple[int, list[int]]]:
    """Length bucketing: (bucket, positions) per chunk, in dispatch order.

    Items are taken in windows of `window` consecutive positions; within a window they are
    sorted by length (stably) and cut into chunks, so each chunk holds items of similar
    length and pads little. Each chunk's positions come back in input order, so a window's
    results can be merged back into input order with memory bounded by the window. With
    sizes and max_size, a chunk whose items' sizes add up to more is cut further.
    """
    if len(lengths) != len(items):
        raise ValueError("one length per item")
    window = max(window, chunk_size)
    out: list[tuple[int, list[int]]] = []
    for bucket, start in enumerate(range(0, len(items), window)):
        positions = range(start, min(start + window, len(items)))
        by_length = sorted(positions, key=lambda p: lengths[p])
        for piece in cut_chunks(by_length, chunk_size):
            parts = (
                [piece]
                if sizes is None or max_size is None
                else split_by_size(piece, sizes, max_size)
            )
            out.extend((bucket, sorted(part)) for part in parts)
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
