"""Decompressing a gzip upload while it streams in, bounded against decompression bombs:
the output comes in pieces of at most PIECE_BYTES (never a whole block's expansion at
once), and a stream that expands past max_ratio times the compressed bytes read is
refused once it has produced RATIO_AFTER_BYTES. The caller bounds the total it keeps."""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator

from core.errors import InvalidInput, TooLarge

GZIP_MAGIC = b"\x1f\x8b"
PIECE_BYTES = 1 << 20
# Small files may expand as much as they like (a file of one repeated line does): the
# ratio is only judged once this much has come out.
RATIO_AFTER_BYTES = 16 << 20


def is_gzip(head: bytes) -> bool:
    """Whether data starting with these (two or more) bytes is gzip: no JSONL line starts
    with 0x1f."""
    return head.startswith(GZIP_MAGIC)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_gzip", param="file")


class GunzipStream:
    """Feed compressed blocks in, take decompressed pieces out; gzip files of several
    members (`cat a.gz b.gz`) and zero padding after the last are taken as gzip takes them."""

    def __init__(self, *, max_ratio: float) -> None:
        self.max_ratio = max_ratio
        self.read = 0  # compressed bytes consumed
        self.written = 0  # decompressed bytes produced
        self._member: zlib._Decompress | None = None
        self._between = b""  # bytes after a member's end, before the next one's header

    def feed(self, block: bytes) -> Iterator[bytes]:
        """The decompressed pieces this block completes."""
        data = block
        while data:
            if self._member is None:
                data = self._between + data
                self._between = b""
                if len(data) < len(GZIP_MAGIC) and GZIP_MAGIC.startswith(data):
                    self._between = data  # a member's header may follow in the next block
                    return
                if not data.strip(b"\0"):
                    self.read += len(data)  # padding, as `gzip -d` ignores it
                    return
                if not is_gzip(data):
                    raise _invalid("the file has data after the end of its gzip stream")
                self._member = zlib.decompressobj(wbits=31)
            data = yield from self._inflate(self._member, data)

    def _inflate(self, member: zlib._Decompress, data: bytes) -> Generator[bytes, None, bytes]:
        """Decompress what the member takes of data; returns what follows its end."""
        while data:
            try:
                piece = member.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                raise _invalid(f"the file is not valid gzip ({exc})") from None
            rest = member.unconsumed_tail
            self.read += len(data) - len(rest) - len(member.unused_data)
            self.written += len(piece)
            if self.written > RATIO_AFTER_BYTES and self.written > self.max_ratio * self.read:
                raise TooLarge(
                    f"the gzip file expands more than {self.max_ratio:g} times (a "
                    "decompression bomb?); upload it uncompressed",
                    code="gzip_ratio_too_high",
                    param="file",
                )
            if piece:
                yield piece
            if member.eof:
                self._member = None
                return member.unused_data
            data = rest
        return b""

    def finish(self) -> None:
        """Refuse a stream that ends inside a member (a truncated upload)."""
        if self._member is not None or self._between:
            raise _invalid("the gzip stream ends early: was the upload cut short?")
