"""Reading JSONL incrementally: lines split across blocks, with their 1-based numbers, a
length limit enforced without buffering past it, and per-line parse errors that name the
line. Shared by the API (checking an upload as it streams) and the worker (ingest)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"


class LineError(Exception):
    """A line that cannot be taken, with its number and a machine-readable code."""

    def __init__(self, line: int, code: str, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.code, self.message = line, code, message

    def as_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready record."""
        return {"line": self.line, "code": self.code, "message": self.message}


class LineSplitter:
    """Feeds blocks in, yields (line number, line bytes) for every complete line."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.tail = b""
        self.line_no = 0
        self.at_start = True

    def feed(self, block: bytes) -> Iterator[tuple[int, bytes]]:
        """The complete lines this block finishes (without their newline)."""
        data = self.tail + block if self.tail else block
        if self.at_start:
            if len(data) < len(BOM) and BOM.startswith(data):
                self.tail = data  # too short to tell whether it is a byte-order mark
                return
            self.at_start = False
            if data.startswith(BOM):
                data = data[len(BOM) :]
        lines = data.split(b"\n")
        self.tail = lines.pop()
        limit = self.max_line_bytes
        # Only a block longer than the limit can hold a line that is; the lines before a
        # long one are still yielded first.
        long_at = (
            next((i for i, line in enumerate(lines) if len(line) > limit), None)
            if len(data) > limit
            else None
        )
        good = lines if long_at is None else lines[:long_at]
        first = self.line_no + 1
        self.line_no += len(good)
        yield from enumerate(good, first)
        if long_at is not None:
            raise _too_long(self.line_no + 1, limit)
        if len(self.tail) > self.max_line_bytes:
            raise _too_long(self.line_no + 1, self.max_line_bytes)

    def finish(self) -> Iterator[tuple[int, bytes]]:
        """The last line, when the input does not end with a newline."""
        tail, self.tail = self.tail, b""
        if self.at_start and tail.startswith(BOM):
            tail = tail[len(BOM) :]
        if tail:
            self.line_no += 1
            yield self.line_no, tail


def _too_long(line: int, limit: int) -> LineError:
    return LineError(line, "line_too_long", f"line is longer than {limit} bytes")


def split_lines(
    blocks: Iterable[bytes], max_line_bytes: int
) -> Generator[tuple[int, bytes], None, None]:
    """Every line of a stream of blocks, numbered from 1."""
    splitter = LineSplitter(max_line_bytes)
    for block in blocks:
        yield from splitter.feed(block)
    yield from splitter.finish()


def in_blocks(pieces: Iterable[bytes], min_bytes: int) -> Iterator[bytes]:
    """The pieces joined into blocks of at least min_bytes (the last may be smaller): one
    write or network message per block, not per line, whose overhead dominates small lines."""
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= min_bytes:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def is_blank(line: bytes) -> bool:
    """Whether a line holds nothing but whitespace (skipped, though it keeps its number)."""
    return not line.strip()


def parse_object(line_no: int, line: bytes) -> dict[str, Any]:
    """The JSON object on a line; LineError if it is not valid UTF-8 JSON or not an object."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise LineError(line_no, "invalid_utf8", "line is not valid UTF-8") from None
        raise LineError(line_no, "invalid_json", f"line is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise LineError(
            line_no, "not_an_object", f"line holds a JSON {type(value).__name__}, not an object"
        )
    return value
