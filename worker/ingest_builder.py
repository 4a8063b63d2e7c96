"""Turning a file's lines into a job's chunks: every line checked against the task, items
length-bucketed one window at a time (memory bounded by the window, not the file),
duplicate custom_ids found from 16-byte digests (16 bytes an item, whatever the ids)."""

from __future__ import annotations

import hashlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import states
from core.chunking import bucket_chunks
from core.codec import pack_indices, pack_inputs, pack_lines
from core.contracts.items import ItemInvalid, ItemLimits, check_line
from core.contracts.token_counts import char_lengths
from core.jsonl import LineError, is_blank, parse_object
from core.result_lines import error_line

DIGEST_BYTES = 16


@dataclass
class IngestSettings:
    """What the builder needs to know of the job and the limits."""

    model: str
    task: str
    limits: ItemLimits
    chunk_size: int
    window: int
    skip_invalid: bool
    max_errors: int
    max_items: int
    # (custom_id, value) of a parsed line, or ItemInvalid; native lines by default.
    check: Callable[[dict[str, Any]], tuple[str | None, Any]] | None = None
    # Sort keys of checked values for length bucketing.
    lengths: Callable[[list[Any]], list[int]] = char_lengths

    def check_line(self, obj: dict[str, Any]) -> tuple[str | None, Any]:
        """The line's (custom_id, value), checked."""
        if self.check is not None:
            return self.check(obj)
        return check_line(self.task, obj, self.limits)


@dataclass
class ChunkBuilder:
    """Feed numbered lines in; take chunk rows out one window at a time; then the verdict."""

    cfg: IngestSettings
    total: int = 0
    invalid: int = 0
    chunks: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    _window: list[tuple[int, str | None, Any]] = field(default_factory=list)
    _failed: list[bytes] = field(default_factory=list)
    _failed_indices: list[int] = field(default_factory=list)
    _digests: bytearray = field(default_factory=bytearray)
    _digest_lines: array = field(default_factory=lambda: array("I"))

    @property
    def writing(self) -> bool:
        """Whether chunks are still worth building (not once a failing verdict is certain)."""
        return self.cfg.skip_invalid or self.invalid == 0

    def _error(self, line: int, code: str, message: str) -> None:
        if len(self.errors) < self.cfg.max_errors:
            self.errors.append({"line": line, "code": code, "message": message})

    def add(self, line_no: int, line: bytes) -> list[dict[str, Any]]:
        """Take one line; returns chunk rows when it completes a window."""
        if is_blank(line):
            return []
        index = self.total
        self.total += 1
        if self.total > self.cfg.max_items:
            raise LineError(line_no, "too_many_items", f"more than {self.cfg.max_items} items")
        try:
            obj = parse_object(line_no, line)
            custom_id, value = self.cfg.check_line(obj)
        except (LineError, ItemInvalid) as exc:
            self.invalid += 1
            self._error(line_no, exc.code, exc.message)
            if self.cfg.skip_invalid:
                cid = obj.get("custom_id") if isinstance(exc, ItemInvalid) else None
                cid = cid if isinstance(cid, str) and len(cid) <= 512 else None
                self._failed.append(
                    error_line(index, cid, exc.code, f"line {line_no}: {exc.message}")
                )
                self._failed_indices.append(index)
            return self._maybe_cut()
        if custom_id is not None:
            self._digests += hashlib.blake2b(custom_id.encode(), digest_size=DIGEST_BYTES).digest()
            self._digest_lines.append(line_no)
        if self.writing:
            self._window.append((index, custom_id, value))
        return self._maybe_cut()

    def _maybe_cut(self) -> list[dict[str, Any]]:
        if len(self._window) + len(self._failed) >= self.cfg.window:
            return self._cut()
        return []

    def _cut(self) -> list[dict[str, Any]]:
        """Chunk rows for the current window: its valid items bucketed by length, and its
        skipped lines as one finished chunk of failed items (so results stay in order)."""
        rows: list[dict[str, Any]] = []
        bucket = self.chunks  # any increasing number serves: results merge bucket by bucket
        records, self._window = self._window, []
        if not self.writing:
            return rows
        lengths = self.cfg.lengths([v for _, _, v in records])  # the API's sort key too
        for _, positions in bucket_chunks(
            records, lengths, chunk_size=self.cfg.chunk_size, window=max(1, len(records))
        ):
            rows.append(
                {
                    "model": self.cfg.model,
                    "seq": self.chunks + len(rows),
                    "bucket": bucket,
                    "status": states.C_PENDING,
                    "n_items": len(positions),
                    "inputs": pack_inputs((records[p] for p in positions), level=1),
                    "item_indices": pack_indices(records[p][0] for p in positions),
                    "completed": 0,
                    "failed": 0,
                    "attempts": 0,
                }
            )
        if self._failed:
            rows.append(
                {
                    "model": self.cfg.model,
                    "seq": self.chunks + len(rows),
                    "bucket": bucket,
                    "status": states.C_DONE,
                    "n_items": len(self._failed),
                    "inputs": pack_inputs([]),
                    "item_indices": pack_indices(self._failed_indices),
                    "outputs": pack_lines(self._failed),
                    "completed": 0,
                    "failed": len(self._failed),
                    "attempts": 0,
                    "finished_at": time.time(),
                }
            )
            self._failed, self._failed_indices = [], []
        self.chunks += len(rows)
        return rows

    def finish(self) -> list[dict[str, Any]]:
        """The last window's rows; then duplicate custom_ids are reported as errors."""
        rows = self._cut()
        self._find_duplicates()
        return rows

    def _find_duplicates(self) -> None:
        if len(self._digests) < 2 * DIGEST_BYTES:
            return
        # A stable sort on the two 8-byte halves (lexsort: last key first) puts equal
        # digests next to each other, earliest line first; a structured 16-byte argsort
        # is several times slower at a million ids.
        halves = np.frombuffer(bytes(self._digests), dtype=">u8").reshape(-1, 2)
        order = np.lexsort((halves[:, 1], halves[:, 0]))
        ranked = halves[order]
        same = (ranked[1:, 0] == ranked[:-1, 0]) & (ranked[1:, 1] == ranked[:-1, 1])
        repeats = order[1:][same]
        if not len(repeats):
            return
        self.duplicates = len(repeats)
        for pos in sorted(int(p) for p in repeats)[: self.cfg.max_errors]:
            self._error(
                int(self._digest_lines[pos]),
                "duplicate_custom_id",
                "custom_id is used by an earlier line",
            )

    def verdict(self) -> tuple[bool, dict[str, Any] | None]:
        """(accepted, errors): a file with duplicate ids, or invalid lines in `fail` mode,
        is rejected; skipped lines are listed on an accepted job."""
        if self.total == 0:
            return False, {
                "data": [{"line": None, "code": "empty_file", "message": "no lines"}],
                "invalid_lines": 0,
            }
        errors = sorted(self.errors, key=lambda e: e["line"])[: self.cfg.max_errors]
        report = {"data": errors, "invalid_lines": self.invalid, "duplicates": self.duplicates}
        if self.duplicates or (self.invalid and not self.cfg.skip_invalid):
            return False, report
        return True, (report if self.invalid else None)
