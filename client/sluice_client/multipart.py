"""A multipart/form-data body of form fields and one JSONL file, streamed block by block so
that an upload never sits whole in memory."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator


def _safe(value: str) -> str:
    return value.replace('"', "_").replace("\r", "_").replace("\n", "_")


def _head(boundary: str, fields: dict[str, str], filename: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_safe(name)}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{_safe(filename)}"\r\nContent-Type: application/jsonl\r\n\r\n'
    )
    return "".join(parts).encode()


def _tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def content_type(boundary: str) -> str:
    """The Content-Type header of a body with this boundary."""
    return f"multipart/form-data; boundary={boundary}"


def new_boundary() -> str:
    """A boundary no JSONL line will hold by chance."""
    return f"sluice-{secrets.token_hex(16)}"


def multipart_blocks(
    blocks: Iterable[bytes], *, boundary: str, filename: str, fields: dict[str, str]
) -> Iterator[bytes]:
    """The body: the fields, then the file's blocks as they come, then the closing line."""
    yield _head(boundary, fields, filename)
    yield from blocks
    yield _tail(boundary)


async def amultipart_blocks(
    blocks: AsyncIterable[bytes], *, boundary: str, filename: str, fields: dict[str, str]
) -> AsyncIterator[bytes]:
    """multipart_blocks for an async iterable of blocks."""
    yield _head(boundary, fields, filename)
    async for block in blocks:
        yield block
    yield _tail(boundary)
