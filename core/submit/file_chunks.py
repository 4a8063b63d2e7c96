"""Turning a file's lines into a job's chunks: every line checked against the task, items
length-bucketed one window at a time (memory bounded by the window, not the file),
duplicate custom_ids found from 16-byte digests (16 bytes an item, whatever the ids)."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import orjson

from core.contracts.images import ImageLimits, image_pixels
from core.contracts.items import ItemInvalid, ItemLimits, check_line, line_custom_id
from core.contracts.openai_requests import check_request_line, request_length
from core.contracts.spec import ModelSpec
from core.contracts.token_counts import char_lengths
from core.jsonl import LineError, parse_object
from core.result_lines import error_line
from core.store.chunk_rows import bucketed_rows, failed_chunk_row

DIGEST_BYTES = 16
LineCheck = Callable[[dict[str, Any]], tuple[str | None, Any]]
Lengths = Callable[[list[Any]], list[int]]


def line_rules(
    spec: ModelSpec,
    endpoint: str | None,
    limits: ItemLimits,
    max_dimensions: int | None,
    image_limits: ImageLimits,
) -> tuple[LineCheck, Lengths]:
    """How a line is checked, and its sort key: a native item (by characters, or an
    image by pixels), or an OpenAI batch request to the batch's endpoint for the model."""
    if endpoint is None:
        native = partial(check_line, spec.task, limits=limits)
        if spec.task == "classify_image":
            return native, partial(image_pixels, limits=image_limits)
        return native, char_lengths

    def check(obj: dict[str, Any]) -> tuple[str | None, Any]:
        return check_request_line(endpoint, spec.name, obj, limits, max_dimensions=max_dimensions)

    def lengths(bodies: list[Any]) -> list[int]:
        return [request_length(endpoint, b) for b in bodies]

    return check, lengths


@dataclass
class IngestSettings:
    """What the builder needs to know of the job and the limits."""

    model: str
    task: str
    limits: ItemLimits
    # Items per chunk, asked for at the first cut (the ingest times the model meanwhile).
    chunk_size: Callable[[], int]
    window: int
    skip_invalid: bool
    max_errors: int
    max_items: int
    # (custom_id, value) of a parsed line, or ItemInvalid; native lines by default.
    check: LineCheck | None = None
    # Sort keys of checked values for length bucketing.
    lengths: Lengths = char_lengths
    # The most input text a chunk, and a window, may hold (None: no bound but the counts).
    max_chunk_bytes: int | None = None
    window_bytes: int | None = None


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

    def _reject(self, index: int, line_no: int, obj: Any, exc: LineError | ItemInvalid) -> None:
        """Count an invalid line; in skip mode it becomes a failed item with its error."""
        self.invalid += 1
        self._error(line_no, exc.code, exc.message)
        if self.cfg.skip_invalid:
            # the line's own id (or its alias), so the failed item can be matched to it
            cid = line_custom_id(obj, self.cfg.limits)
            self._failed.append(error_line(index, cid, exc.code, f"line {line_no}: {exc.message}"))
            self._failed_indices.append(index)

    def feed(
        self, lines: Iterable[tuple[int, bytes]], hold_every: int = 20_000
    ) -> Iterator[list[dict[str, Any]]]:
        """Take numbered lines; yields each window's chunk rows as it completes, and an
        empty list every `hold_every` lines between (for the caller's lease)."""
        # One tight loop with its names bound locally: a million-line file spends most of
        # its ingest here.
        cfg = self.cfg
        check = cfg.check or partial(check_line, cfg.task, limits=cfg.limits)
        loads, blake2b, digests, digest_lines = (
            orjson.loads,
            hashlib.blake2b,
            self._digests,
            self._digest_lines,
        )
        window, writing, since_hold = self._window, self.writing, 0
        # A window holds its items' values: cut it at window_bytes of text as well.
        window_bytes, held = cfg.window_bytes or (1 << 62), 0
        for line_no, line in lines:
            if not line.strip():
                continue
            index = self.total
            self.total = index + 1
            if index >= cfg.max_items:
                raise LineError(line_no, "too_many_items", f"more than {cfg.max_items} items")
            obj = None
            try:
                try:
                    obj = loads(line)
                except orjson.JSONDecodeError:
                    obj = parse_object(line_no, line)  # raises the line's error
                if type(obj) is not dict:
                    obj = parse_object(line_no, line)
                custom_id, value = check(obj)
            except (LineError, ItemInvalid) as exc:
                self._reject(index, line_no, obj, exc)
                writing = self.writing
            else:
                if custom_id is not None:
                    digests += blake2b(custom_id.encode(), digest_size=DIGEST_BYTES).digest()
                    digest_lines.append(line_no)
                if writing:
                    window.append((index, custom_id, value))
                    held += len(value) if type(value) is str else 0
            since_hold += 1
            if len(window) + len(self._failed) >= cfg.window or held >= window_bytes:
                yield self._cut()
                window, since_hold, held = self._window, 0, 0
            elif since_hold >= hold_every:
                yield []
                since_hold = 0

    def _cut(self) -> list[dict[str, Any]]:
        """Chunk rows for the current window: its valid items bucketed by length, and its
        skipped lines as one finished chunk of failed items (so results stay in order)."""
        records, self._window = self._window, []
        if not self.writing:
            return []
        # One bucket a window; any increasing number serves: results merge bucket by bucket.
        bucket = self.chunks
        rows = bucketed_rows(
            model=self.cfg.model,
            records=records,
            lengths=self.cfg.lengths([v for _, _, v in records]),  # the API's sort key too
            chunk_size=self.cfg.chunk_size(),
            window=max(1, len(records)),
            first_seq=self.chunks,
            first_bucket=bucket,
            max_chunk_bytes=self.cfg.max_chunk_bytes,
        )
        if self._failed:
            rows.append(
                failed_chunk_row(
                    model=self.cfg.model,
                    seq=self.chunks + len(rows),
                    bucket=bucket,
                    indices=self._failed_indices,
                    lines=self._failed,
                )
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
