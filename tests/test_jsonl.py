"""Splitting streamed blocks into numbered lines (core/jsonl.py)."""

from __future__ import annotations

import random

import pytest

from core.jsonl import BOM, LineError, split_lines


def _blocks(data: bytes, seed: int) -> list[bytes]:
    """The data cut at random places, some blocks empty or a single byte."""
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        step = rng.choice([0, 1, 2, 7, 50, 300])
        out.append(data[at : at + step])
        at += step
    return out


@pytest.mark.parametrize("seed", range(20))
def test_lines_come_back_numbered_whatever_the_block_boundaries(seed: int) -> None:
    lines = [b"x" * (i % 13) + str(i).encode() for i in range(200)]
    data = BOM + b"\n".join(lines)  # no newline at the end: the last line still counts
    got = list(split_lines(_blocks(data, seed), max_line_bytes=1024))
    assert got == list(enumerate(lines, 1))


@pytest.mark.parametrize("seed", range(10))
def test_a_long_line_is_refused_after_the_lines_before_it(seed: int) -> None:
    data = b"a\nbb\n" + b"c" * 2000 + b"\nd\n"
    seen: list[tuple[int, bytes]] = []
    with pytest.raises(LineError) as caught:
        seen.extend(split_lines(_blocks(data, seed), max_line_bytes=1024))
    assert caught.value.code == "line_too_long" and caught.value.line == 3
    assert seen == [(1, b"a"), (2, b"bb")]
