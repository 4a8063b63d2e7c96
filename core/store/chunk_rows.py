"""The one shape of a chunk row, and cutting records into length-bucketed chunk rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from core import states
from core.chunking import bucket_chunks
from core.codec import InputRecord, pack_indices, pack_inputs, pack_lines

# zstd level of stored inputs: level 1 packs a chunk several times faster than 3, for a
# few percent more bytes; ingest speed is what a large file waits on.
INPUT_LEVEL = 1


def stored_size(value: Any) -> int:
    """About how many bytes an input takes in a chunk: a text's (or image's) characters,
    a pair's, or the JSON of anything else (a prompt, an OpenAI request body)."""
    if type(value) is str:
        return len(value)
    if isinstance(value, (tuple, list)) and all(type(v) is str for v in value):
        return sum(len(v) for v in value)
    return len(orjson.dumps(value))


def chunk_row(
    *,
    model: str,
    seq: int,
    bucket: int,
    records: Sequence[InputRecord],
    token_counts: Sequence[int] | None = None,
    attempts: int = 0,
) -> dict[str, Any]:
    """A pending chunk of input records (with their token counts, where known)."""
    packed = (
        [(*r, c) for r, c in zip(records, token_counts, strict=True)] if token_counts else records
    )
    return {
        "model": model,
        "seq": seq,
        "bucket": bucket,
        "status": states.C_PENDING,
        "n_items": len(records),
        "inputs": pack_inputs(packed, level=INPUT_LEVEL),
        "item_indices": pack_indices(r[0] for r in records),
        "completed": 0,
        "failed": 0,
        "attempts": attempts,
    }


def failed_chunk_row(
    *, model: str, seq: int, bucket: int, indices: Sequence[int], lines: Sequence[bytes]
) -> dict[str, Any]:
    """A finished chunk of items that failed their checks: their error lines are its
    results, so a job's results stay in input order."""
    return {
        "model": model,
        "seq": seq,
        "bucket": bucket,
        "status": states.C_DONE,
        "n_items": len(lines),
        "inputs": pack_inputs([]),
        "item_indices": pack_indices(indices),
        "outputs": pack_lines(lines),
        "completed": 0,
        "failed": len(lines),
        "attempts": 0,
        "finished_at": time.time(),
    }


def bucketed_rows(
    *,
    model: str,
    records: Sequence[InputRecord],
    lengths: Sequence[int],
    chunk_size: int,
    window: int,
    lengths_are_tokens: bool = False,
    first_seq: int = 0,
    first_bucket: int = 0,
    max_chunk_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """Chunk rows of records sorted by length within windows of `window` records, each
    chunk a run of similar lengths (its records in input order) and at most max_chunk_bytes
    of input text; with token counts, the rows carry them for the runner's planner."""
    sizes = [stored_size(r[2]) for r in records] if max_chunk_bytes else None
    plan = bucket_chunks(
        records,
        lengths,
        chunk_size=chunk_size,
        window=window,
        sizes=sizes,
        max_size=max_chunk_bytes,
    )
    return [
        chunk_row(
            model=model,
            seq=first_seq + n,
            bucket=first_bucket + bucket,
            records=[records[p] for p in positions],
            token_counts=[lengths[p] for p in positions] if lengths_are_tokens else None,
        )
        for n, (bucket, positions) in enumerate(plan)
    ]
