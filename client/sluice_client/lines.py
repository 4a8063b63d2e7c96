"""Result lines out of a streamed body. Lines end at b"\\n" only: a JSON line may hold
U+2028 or other characters that str.splitlines() (and httpx's iter_lines) would cut at."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator


class LineSplitter:
    """Cuts blocks into lines, holding only the unfinished line between blocks."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def feed(self, block: bytes) -> Iterator[bytes]:
        """The lines this block completes (blank ones left out)."""
        start = 0
        while (end := block.find(b"\n", start)) != -1:
            piece = block[start:end]
            line = b"".join([*self.pending, piece]) if self.pending else piece
            self.pending.clear()
            if line.strip():
                yield line
            start = end + 1
        if start < len(block):
            self.pending.append(block[start:])

    def finish(self) -> Iterator[bytes]:
        """The last line, if the body did not end in a newline."""
        tail = b"".join(self.pending)
        self.pending.clear()
        if tail.strip():
            yield tail


def split_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank lines of a stream of blocks, without their newlines."""
    splitter = LineSplitter()
    for block in blocks:
        yield from splitter.feed(block)
    yield from splitter.finish()


async def asplit_lines(blocks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """split_lines for an async stream of blocks."""
    splitter = LineSplitter()
    async for block in blocks:
        for line in splitter.feed(block):
            yield line
    for line in splitter.finish():
        yield line
