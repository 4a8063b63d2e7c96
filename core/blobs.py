"""Where uploaded files' bytes live: the database in compressed parts (reachable from every
host that reaches the database), or a directory every API and worker host shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, insert, select

from core.codec import compress, decompress
from core.db import read_session, write_session
from core.tables import FilePart

READ_BLOCK = 1 << 20


class PartWriter(Protocol):
    """Appends a file's bytes; `close` makes them durable, `abort` throws them away."""

    def write(self, data: bytes) -> None:
        """Append bytes (buffered into parts)."""

    def close(self) -> None:
        """Flush what is buffered."""

    def abort(self) -> None:
        """Remove everything written so far."""


class FileStorage(Protocol):
    """A place for file contents, addressed by file id."""

    name: str

    def writer(self, file_id: str) -> PartWriter:
        """A writer for a new file."""

    def read(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, in blocks, in order."""

    def delete(self, file_id: str) -> None:
        """Remove the file's bytes (no error if there are none)."""


class _DatabaseWriter:
    def __init__(self, url: str, file_id: str, part_bytes: int) -> None:
        self.url, self.file_id, self.part_bytes = url, file_id, part_bytes
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.seq = 0

    def write(self, data: bytes) -> None:
        self.buffer.append(data)
        self.buffered += len(data)
        if self.buffered >= self.part_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self.buffered:
            return
        # zstd level 1: text shrinks about 3x at hundreds of MB/s, without the GIL.
        data = compress(b"".join(self.buffer), 1)
        self.buffer, self.buffered = [], 0
        with write_session(self.url) as session:
            session.execute(
                insert(FilePart), [{"file_id": self.file_id, "seq": self.seq, "data": data}]
            )
        self.seq += 1

    def close(self) -> None:
        self._flush()

    def abort(self) -> None:
        self.buffer, self.buffered = [], 0
        DatabaseStorage(self.url).delete(self.file_id)


class DatabaseStorage:
    """Files as compressed parts in the file_parts table, one short transaction a part."""

    name = "db"

    def __init__(self, url: str, part_bytes: int = 4 << 20) -> None:
        self.url, self.part_bytes = url, part_bytes

    def writer(self, file_id: str) -> PartWriter:
        return _DatabaseWriter(self.url, file_id, self.part_bytes)

    def read(self, file_id: str) -> Iterator[bytes]:
        seq = 0
        while True:  # one part per short session: no transaction open while the caller works
            with read_session(self.url) as session:
                data = session.scalar(
                    select(FilePart.data).where(FilePart.file_id == file_id, FilePart.seq == seq)
                )
            if data is None:
                return
            yield decompress(data)
            seq += 1

    def delete(self, file_id: str) -> None:
        with write_session(self.url) as session:
            session.execute(delete(FilePart).where(FilePart.file_id == file_id))


class _DirectoryWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_suffix(".partial")
        self.fh = open(self.partial, "wb")  # noqa: SIM115 - closed in close/abort

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.partial, self.path)  # readers never see a half-written file

    def abort(self) -> None:
        self.fh.close()
        self.partial.unlink(missing_ok=True)


class DirectoryStorage:
    """Files as plain files in a directory (shared by every host, e.g. over NFS)."""

    name = "dir"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, file_id: str) -> Path:
        if not file_id.replace("_", "").isalnum():  # ids are ours, but never trust a path
            raise ValueError(f"bad file id {file_id!r}")
        return self.root / f"{file_id}.jsonl"

    def writer(self, file_id: str) -> PartWriter:
        return _DirectoryWriter(self._path(file_id))

    def read(self, file_id: str) -> Iterator[bytes]:
        path = self._path(file_id)
        if not path.exists():
            return
        with open(path, "rb") as fh:
            while block := fh.read(READ_BLOCK):
                yield block

    def delete(self, file_id: str) -> None:
        path = self._path(file_id)
        path.unlink(missing_ok=True)
        path.with_suffix(".partial").unlink(missing_ok=True)


def storage_for(*, database_url: str, files_dir: Path | None, part_bytes: int) -> FileStorage:
    """The configured storage: a shared directory when set, else the database."""
    if files_dir is not None:
        return DirectoryStorage(files_dir)
    return DatabaseStorage(database_url, part_bytes)


def storage_named(name: str, *, database_url: str, files_dir: Path | None) -> FileStorage:
    """The storage a file was written to (its row says which), to read or delete it."""
    if name == "dir":
        if files_dir is None:
            raise ValueError("a file is stored in a directory, but SLUICE_FILES_DIR is not set")
        return DirectoryStorage(files_dir)
    return DatabaseStorage(database_url)
