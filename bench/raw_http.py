"""A minimal HTTP/1.1 client on asyncio streams, for load generators that share the machine
with what they measure: one keep-alive connection, GET only, Content-Length and chunked
bodies. httpx spends more CPU per request than sluice's API spends answering a status
request, so hundreds of httpx clients on a 2-core machine measure mostly themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class Connection:
    """One keep-alive connection to a base URL (http only), opened on first use."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _send(self, path: str, headers: dict[str, str] | None) -> asyncio.StreamReader:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}{extra}\r\n".encode()
        )
        assert self._reader is not None
        return self._reader

    async def _head(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), fields

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return
            yield data[:-2]

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET a path: (status, body). Any failure closes the connection and raises."""
        try:
            reader = await self._send(path, headers)
            status, fields = await self._head(reader)
            if fields.get("transfer-encoding") == "chunked":
                body = b"".join([c async for c in self._chunks(reader)])
            else:
                body = await reader.readexactly(int(fields.get("content-length", "0")))
            if fields.get("connection") == "close":
                self.close()
            return status, body
        except BaseException:
            self.close()
            raise

    async def lines(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, AsyncIterator[str]]:
        """GET a streamed (chunked) response: (status, its lines as they come). The
        connection is not reused after a stream."""
        reader = await self._send(path, headers)
        status, fields = await self._head(reader)

        async def lines() -> AsyncIterator[str]:
            pending = b""
            try:
                if fields.get("transfer-encoding") != "chunked":
                    pending = await reader.readexactly(int(fields.get("content-length", "0")))
                else:
                    async for chunk in self._chunks(reader):
                        pending += chunk
                        *done, pending = pending.split(b"\n")
                        for line in done:
                            yield line.rstrip(b"\r").decode()
                if pending:
                    yield pending.decode()
            finally:
                self.close()

        return status, lines()

    def close(self) -> None:
        """Drop the connection (the next request opens another)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
