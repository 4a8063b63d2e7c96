"""Uploading a JSONL(.gz) file as a streamed multipart body, converting `{id, text}` lines
to `{custom_id, input}` on the way, with a progress bar over the file's bytes."""

from __future__ import annotations

import gzip
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import orjson

from core.jsonl import in_blocks

BLOCK_BYTES = 1 << 20


def _native(line: bytes) -> bytes:
    """A line in the API's shape; anything else is sent as it is, for the server to judge
    (and report with its line number)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if isinstance(obj, dict) and "input" not in obj and "text" in obj:
        cid = obj.get("custom_id", obj.get("id"))
        return orjson.dumps({"custom_id": None if cid is None else str(cid), "input": obj["text"]})
    return line


def native_lines(
    path: Path, limit: int | None = None, on_progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The file's lines (each ending in a newline), gunzipped and converted; on_progress
    gets the bytes of the file read so far."""
    raw: IO[bytes] = path.open("rb")
    with raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        # closing raw (the with above) is enough: GzipFile holds no other resource
        fh: IO[bytes] = gzip.open(raw) if gzipped else raw  # type: ignore[assignment]  # noqa: SIM115
        count = 0
        for line in fh:
            stripped = line.rstrip(b"\r\n")
            yield (_native(stripped) if stripped.strip() else stripped) + b"\n"
            if stripped.strip():
                count += 1
            if on_progress and count % 1000 == 0:
                on_progress(raw.tell())
            if limit is not None and count >= limit:
                break
        if on_progress:
            on_progress(raw.tell())


def multipart_body(
    lines: Iterator[bytes], *, filename: str, fields: dict[str, str]
) -> tuple[str, Iterator[bytes]]:
    """(content type, body blocks) of a multipart form with the fields and one file."""
    boundary = secrets.token_hex(16)
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")

    def body() -> Iterator[bytes]:
        for name, value in fields.items():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{safe_name}"\r\nContent-Type: application/jsonl\r\n\r\n'
        ).encode()
        yield from in_blocks(lines, BLOCK_BYTES)
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()
