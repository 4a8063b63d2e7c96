"""Reading a JSONL (optionally gzipped) file into job inputs, with line-numbered errors."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson


class InputFileError(ValueError):
    """A line of an input file is not a usable input."""


@contextmanager
def open_lines(path: Path) -> Iterator[IO[bytes]]:
    """The file to read lines from, gunzipped if it is gzip (by its first bytes)."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped  # type: ignore[misc]  # a GzipFile reads as an IO[bytes]


def read_inputs(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Items `{"custom_id", "input"}` from lines `{"custom_id"?, "input"}` or `{"id", "text"}`."""
    with open_lines(path) as fh:
        count = 0
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputFileError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise InputFileError(f"{path}:{lineno}: expected a JSON object")
            if "input" in obj:
                item = {"custom_id": obj.get("custom_id"), "input": obj["input"]}
            elif "text" in obj:
                cid = obj.get("custom_id", obj.get("id"))
                item = {"custom_id": None if cid is None else str(cid), "input": obj["text"]}
            else:
                raise InputFileError(f"{path}:{lineno}: needs an `input` (or `text`) field")
            yield item
            count += 1
            if limit is not None and count >= limit:
                return
