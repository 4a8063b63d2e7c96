"""Streaming a multipart file upload into storage: the body is parsed as it arrives, a
gzip file is decompressed as it comes (core.gunzip), every line is checked (UTF-8, one
JSON object, a length limit) and written through in parts, so an upload of any size holds
about one block in memory and a bad line is refused with its number before anything is
kept. A gzip file is stored decompressed: its size, lines and digest are the JSONL's."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import (
    MAX_BOUNDARY_LENGTH,
    MultipartParser,
    parse_options_header,
)

from core.blobs import PartWriter
from core.errors import InvalidInput, TooLarge, shown
from core.gunzip import GZIP_MAGIC, GunzipStream, is_gzip
from core.jsonl import LineError, LineSplitter, is_blank, parse_object

HAND_OFF_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class UploadLimits:
    """What one upload may hold."""

    max_bytes: int
    max_line_bytes: int
    max_lines: int
    # A gzip file may expand at most this many times (core.gunzip).
    max_gzip_ratio: float = 100.0


class LineSink:
    """Checks and stores the file part's bytes: size, lines, digest."""

    def __init__(self, writer: PartWriter, limits: UploadLimits) -> None:
        self.writer, self.limits = writer, limits
        self.splitter = LineSplitter(limits.max_line_bytes)
        self.digest = hashlib.sha256()
        self.size = 0
        self.lines = 0
        # Until the file's first bytes are seen, whether it is gzip is not known.
        self.gunzip: GunzipStream | None = None
        self._head: bytes | None = b""

    @property
    def gzipped(self) -> bool:
        """Whether the file came gzipped (and is stored decompressed)."""
        return self.gunzip is not None

    def consume(self, block: bytes) -> None:
        """Check one block's complete lines, then store the block (decompressed first if the
        file is gzip)."""
        if self._head is not None:
            block = self._head + block
            if len(block) < len(GZIP_MAGIC):
                self._head = block
                return
            self._head = None
            if is_gzip(block):
                self.gunzip = GunzipStream(max_ratio=self.limits.max_gzip_ratio)
        if self.gunzip is None:
            self._store(block)
            return
        for piece in self.gunzip.feed(block):
            self._store(piece)

    def _store(self, block: bytes) -> None:
        self.size += len(block)
        if self.size > self.limits.max_bytes:
            unpacked = " once decompressed" if self.gzipped else ""
            raise TooLarge(
                f"file is larger than {self.limits.max_bytes} bytes{unpacked}",
                code="file_too_large",
                param="file",
            )
        self._check(self.splitter.feed(block))
        self.digest.update(block)
        self.writer.write(block)

    def finish(self) -> None:
        """Check the last line, and store everything still buffered."""
        if self._head:  # a file of a single byte
            self._store(self._head)
        self._head = None
        if self.gunzip is not None:
            self.gunzip.finish()
        self._check(self.splitter.finish())
        if self.lines == 0:
            raise InvalidInput("file has no lines", code="empty_file", param="file")
        self.writer.close()

    def _check(self, lines: object) -> None:
        try:
            for number, line in lines:  # type: ignore[attr-defined]
                if is_blank(line):
                    continue
                parse_object(number, line)
                self.lines += 1
        except LineError as exc:
            raise InvalidInput(
                f"line {exc.line}: {exc.message}",
                code=exc.code,
                param="file",
                details={"line": exc.line},
            ) from None
        if self.lines > self.limits.max_lines:
            raise TooLarge(
                f"file has more than {self.limits.max_lines} lines",
                code="too_many_items",
                param="file",
            )


@dataclass
class _Parts:
    """Parser state: the fields seen so far and the file part's pending bytes."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    name: str = ""
    in_file: bool = False
    files_seen: int = 0
    value: bytearray = field(default_factory=bytearray)


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            "send the file as multipart/form-data with a `file` part",
            code="expected_multipart",
            param="file",
        )
    # python-multipart's constructor raises past its limit (RFC 2046 asks for 70 at most):
    # refused here, it is the client's error rather than a 500.
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidInput(
            f"the multipart boundary is longer than {MAX_BOUNDARY_LENGTH} characters",
            code="invalid_multipart",
            param="file",
        )
    return boundary


def _callbacks(st: _Parts) -> dict[str, object]:
    def on_part_begin() -> None:
        st.headers, st.name, st.in_file, st.value = {}, "", False, bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        st.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        st.header_value += data[start:end]

    def on_header_end() -> None:
        st.headers[st.header_name.lower()] = st.header_value
        st.header_name, st.header_value = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(st.headers.get(b"content-disposition", b""))
        st.name = options.get(b"name", b"").decode("utf-8", "replace")
        if st.name == "file":
            st.in_file = True
            st.files_seen += 1
            st.filename = options.get(b"filename", b"upload.jsonl").decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if st.in_file:
            st.pending.append(data[start:end])
            st.pending_bytes += end - start
        else:
            st.value += data[start:end]
            if len(st.value) > MAX_FIELD_BYTES:
                raise InvalidInput(f"form field {shown(st.name)} is too long", param=st.name)

    def on_part_end() -> None:
        if not st.in_file and st.name:
            st.fields[st.name] = st.value.decode("utf-8", "replace")

    return {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }


def _feed(step: Callable[[bytes], object], chunk: bytes) -> None:
    """One parser step; a malformed envelope (bad part headers, a broken boundary) is the
    client's error, not the server's."""
    try:
        step(chunk)
    except (MultipartParseError, FormParserError) as exc:
        raise InvalidInput(
            f"the multipart body is malformed: {exc}", code="invalid_multipart", param="file"
        ) from None


async def receive_upload(
    content_type: str, body: AsyncIterator[bytes], sink: LineSink
) -> tuple[dict[str, str], str]:
    """Stream a multipart body: the file part into the sink, the other parts as fields.

    Returns the fields and the file's name. The caller aborts the sink's writer on error.
    """
    st = _Parts()
    parser = MultipartParser(_boundary(content_type), _callbacks(st))  # type: ignore[arg-type]
    async for chunk in body:
        _feed(parser.write, chunk)
        if st.files_seen > 1:
            raise InvalidInput("send one `file` part per upload", param="file")
        if st.pending_bytes >= HAND_OFF_BYTES:
            block = b"".join(st.pending)
            st.pending, st.pending_bytes = [], 0
            await run_in_threadpool(sink.consume, block)  # parse and store off the event loop
    _feed(lambda _: parser.finalize(), b"")
    if st.files_seen == 0:
        raise InvalidInput("the upload has no `file` part", code="missing_file", param="file")
    if st.pending:
        await run_in_threadpool(sink.consume, b"".join(st.pending))
        st.pending, st.pending_bytes = [], 0
    await run_in_threadpool(sink.finish)
    return st.fields, st.filename or "upload.jsonl"
