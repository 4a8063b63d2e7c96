"""What `submit(inputs=...)` takes, turned into JSONL lines `{"custom_id"?, "input"}` one at a
time: an iterable of inputs or items, a pandas DataFrame, a pyarrow Table, or a path to a
JSONL file (sent as it is) or a text file (one input a line)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sluice_client.tables import arrow_items, dataframe_items, is_arrow_table, is_dataframe

JSONL_SUFFIXES = {".jsonl", ".ndjson"}
READ_BYTES = 1 << 20

InputSource = Iterable[Any] | AsyncIterable[Any] | str | os.PathLike[str]


def as_item(value: Any) -> Any:
    """An item: a mapping with an `input` key is one already; anything else is an input
    (bytes, such as an image file's, are sent as base64)."""
    if isinstance(value, Mapping) and "input" in value:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        value = base64.b64encode(value).decode("ascii")
    return {"input": value}


def encode_item(item: Any, index: int) -> bytes:
    """One JSONL line (newline included) of an item."""
    try:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"input {index} cannot be sent as JSON: {exc}") from exc
    return text.encode("utf-8") + b"\n"


def input_path(inputs: Any) -> Path | None:
    """The file that `inputs` names, or None when it is data; a str is always a path."""
    if not isinstance(inputs, str | os.PathLike):
        return None
    path = Path(inputs)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (a str names a JSONL or text file; pass a list for texts)"
        )
    return path


def item_lines(inputs: Iterable[Any]) -> Iterator[bytes]:
    """JSONL lines of in-memory inputs: an iterable, a DataFrame or an Arrow table."""
    if isinstance(inputs, Mapping | bytes | bytearray):
        raise TypeError("inputs is a collection of inputs: put a single one in a list")
    if is_dataframe(inputs):
        items: Iterable[Any] = dataframe_items(inputs)
    elif is_arrow_table(inputs):
        items = arrow_items(inputs)
    else:
        items = (as_item(v) for v in inputs)
    for index, item in enumerate(items):
        yield encode_item(item, index)


async def aitem_lines(inputs: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    """JSONL lines of an async iterable of inputs."""
    index = 0
    async for value in inputs:
        yield encode_item(as_item(value), index)
        index += 1


@contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, gunzipped if it is gzip (by its magic bytes)."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped


def is_jsonl(path: Path) -> bool:
    """Whether a file is JSONL by its name (.jsonl or .ndjson, gzipped or not)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in JSONL_SUFFIXES


def path_blocks(path: Path) -> Iterator[bytes]:
    """The JSONL to upload for a file, in blocks: a JSONL file's bytes as they are (the
    server checks each line and names a bad one), or a text file's lines as inputs."""
    with _open(path) as fh:
        if is_jsonl(path):
            while block := fh.read(READ_BYTES):
                yield block
            return
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{number}: not UTF-8 text") from exc
            if text.strip():
                yield encode_item({"input": text}, number - 1)


def in_blocks(lines: Iterable[bytes], size: int = READ_BYTES) -> Iterator[bytes]:
    """Lines joined into blocks of about `size` bytes (fewer, larger writes)."""
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        buffer.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


async def ain_blocks(lines: AsyncIterable[bytes], size: int = READ_BYTES) -> AsyncIterator[bytes]:
    """in_blocks for an async iterable of lines."""
    buffer: list[bytes] = []
    held = 0
    async for line in lines:
        buffer.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)
