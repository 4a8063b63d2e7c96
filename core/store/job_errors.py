"""A job's failed items grouped by error code, with a few examples of each: read from the
result lines of only those chunks that hold a failure, one chunk at a time, within a
bound on chunks and time, so a job of millions of failures costs a bounded answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.codec import unpack_lines
from core.result_lines import is_failure, parse_result_line, result_error
from core.tables import Chunk

# Longer messages are cut to this many characters in examples.
MESSAGE_CHARS = 300
# Codes past this many are counted under OTHER_CODE (codes are ours, so rarely reached).
MAX_CODES = 50
OTHER_CODE = "other"


@dataclass
class ErrorGroup:
    """One error code: how many items failed with it, and the first few of them."""

    code: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ErrorReport:
    """Groups by count, most first; complete is False when a bound stopped the scan (the
    counts then cover the chunks scanned)."""

    groups: list[ErrorGroup]
    chunks_scanned: int
    complete: bool


def _short(message: Any) -> str:
    text = str(message)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _failed_chunks(
    session_factory: Callable[[], AbstractContextManager[Session]], job_id: str
) -> Iterator[bytes]:
    """The result blobs of the job's chunks that hold a failure, in id order; each chunk
    is read in its own short session (a blob may be large: one at a time)."""
    after = -1
    while True:
        with session_factory() as session:
            row = session.execute(
                select(Chunk.id, Chunk.outputs)
                .where(Chunk.job_id == job_id, Chunk.failed > 0, Chunk.id > after)
                .order_by(Chunk.id)
                .limit(1)
            ).first()
        if row is None:
            return
        after = row[0]
        yield row[1] or b""


def group_errors(
    *,
    session_factory: Callable[[], AbstractContextManager[Session]],
    job_id: str,
    examples_per_code: int = 3,
    max_chunks: int = 500,
    max_seconds: float = 5.0,
) -> ErrorReport:
    """The job's failed items by error code, from at most max_chunks chunks (and about
    max_seconds of reading), with up to examples_per_code examples per code."""
    groups: dict[str, ErrorGroup] = {}
    deadline = time.monotonic() + max_seconds
    scanned, complete = 0, True
    for outputs in _failed_chunks(session_factory, job_id):
        if scanned >= max_chunks or (scanned and time.monotonic() > deadline):
            complete = False
            break
        scanned += 1
        for line in unpack_lines(outputs):
            if is_failure(line):
                _count(groups, parse_result_line(line), examples_per_code)
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.code))
    return ErrorReport(groups=ordered, chunks_scanned=scanned, complete=complete)


def _count(groups: dict[str, ErrorGroup], item: dict[str, Any], examples: int) -> None:
    """Add one failed item to its code's group (OTHER_CODE once MAX_CODES are taken)."""
    error = result_error(item) or {}
    code = str(error.get("code") or "unknown")
    if code not in groups and len(groups) >= MAX_CODES:
        code = OTHER_CODE
    group = groups.setdefault(code, ErrorGroup(code=code))
    group.count += 1
    if len(group.examples) < examples:
        group.examples.append(
            {
                "index": item.get("index"),
                "custom_id": item.get("custom_id"),
                "message": _short(error.get("message", "")),
            }
        )


def validation_groups(
    errors: dict[str, Any] | None, examples_per_code: int = 3
) -> list[ErrorGroup]:
    """The job's validation findings (its `errors` column: up to a hundred invalid lines
    of a file) grouped by code, with examples that name their line."""
    groups: dict[str, ErrorGroup] = {}
    for entry in (errors or {}).get("data") or []:
        if not isinstance(entry, dict):
            continue
        code = str(entry.get("code") or "unknown")
        group = groups.setdefault(code, ErrorGroup(code=code))
        group.count += 1
        if len(group.examples) < examples_per_code:
            group.examples.append(
                {"line": entry.get("line"), "message": _short(entry.get("message", ""))}
            )
    return sorted(groups.values(), key=lambda g: (-g.count, g.code))
