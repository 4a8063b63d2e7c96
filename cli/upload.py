"""The lines the CLI uploads (sluice_client streams them as the file of a multipart body):
a JSONL(.gz) file's, whose `{id, text}` lines become `{custom_id, input}` on the way, or a
directory of images, each a line whose custom_id is its path under the directory and whose
input is a data URL. A progress bar follows the bytes read; one line is held at a time."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import orjson

from core.contracts.images import data_url


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


# Image files a directory upload takes, and the media type of their data URLs.
IMAGE_TYPES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".bmp": "bmp",
    ".gif": "gif",
}


def image_files(directory: Path) -> list[tuple[str, Path, int]]:
    """(path relative to the directory, path, size) of every image file below it, by
    relative path (hidden files and folders left out)."""
    found: list[tuple[str, Path, int]] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_TYPES:
                continue
            found.append((path.relative_to(directory).as_posix(), path, path.stat().st_size))
    found.sort(key=lambda entry: entry[0])
    return found


def image_lines(
    files: list[tuple[str, Path, int]],
    limit: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """One JSONL line per image file, read one at a time; on_progress gets the bytes of
    images read so far."""
    done = 0
    for count, (name, path, size) in enumerate(files[:limit] if limit else files, start=1):
        subtype = IMAGE_TYPES[path.suffix.lower()]
        yield (
            orjson.dumps({"custom_id": name, "input": data_url(path.read_bytes(), subtype)}) + b"\n"
        )
        done += size
        if on_progress and (count % 50 == 0 or count == len(files)):
            on_progress(done)
    if on_progress:
        on_progress(done)
