"""Compression of chunk payloads: inputs as records, outputs as ready JSONL lines (whose
contents core.result_lines defines)."""

from __future__ import annotations

import heapq
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import zstandard

# One input record: [index, custom_id, input]; stored optionally with a 4th field, the
# item's token count (when the API counted with the model's tokenizer).
InputRecord = tuple[int, str | None, Any]


# Blobs are zstd frames (3x faster than zlib at a better ratio on result lines, and faster
# to read back); blobs written before are zlib streams, told apart by zstd's magic number.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compress(data: bytes, level: int = 1, threads: int = 0) -> bytes:
    """A zstd frame of the data (compressors are cheap to make and not thread-safe); with
    threads, zstd compresses the parts of a large input on that many threads of its own."""
    return zstandard.ZstdCompressor(level=level, threads=threads).compress(data)


def decompress(blob: bytes) -> bytes:
    """The data of a zstd frame, or of an older zlib stream."""
    if blob[:4] == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)


def pack_inputs(records: Iterable[tuple[Any, ...]], level: int = 3) -> bytes:
    """Compress a chunk's input records (with or without token counts)."""
    return compress(orjson.dumps(list(records)), level)


def unpack_inputs_with_counts(blob: bytes) -> tuple[list[InputRecord], list[int] | None]:
    """A chunk's input records, and their token counts if every record carries one."""
    raw = orjson.loads(decompress(blob))
    records = [(r[0], r[1], r[2]) for r in raw]
    counts = [r[3] for r in raw] if raw and all(len(r) > 3 for r in raw) else None
    return records, counts


def unpack_inputs(blob: bytes) -> list[InputRecord]:
    """Decompress a chunk's input records."""
    return unpack_inputs_with_counts(blob)[0]


def pack_lines(lines: Iterable[bytes], threads: int = 0) -> bytes:
    """Compress result lines (each one JSON object, no newline) into one blob."""
    return compress(b"".join(line + b"\n" for line in lines), 1, threads)


def unpack_lines(blob: bytes) -> Iterator[bytes]:
    """The result lines of a blob, each ending with a newline."""
    data = decompress(blob)
    start = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        yield data[start:end]
        start = end


def pack_indices(indices: Iterable[int]) -> bytes:
    """Compress a chunk's item indices (ascending uint32)."""
    return zlib.compress(array("I", indices).tobytes(), 1)


def unpack_indices(blob: bytes) -> array:
    """A chunk's item indices."""
    out = array("I")
    out.frombytes(zlib.decompress(blob))
    return out


def merge_in_order(chunks: Sequence[tuple[bytes, bytes]]) -> Iterator[bytes]:
    """Result lines of several chunks (outputs blob, indices blob), merged by item index.

    Each chunk's lines are already in index order, so a k-way merge suffices.
    """
    streams = [zip(unpack_indices(idx), unpack_lines(out), strict=True) for out, idx in chunks]
    for _, line in heapq.merge(*streams, key=lambda pair: pair[0]):
        yield line
