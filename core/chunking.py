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
