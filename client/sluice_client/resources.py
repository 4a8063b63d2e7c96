"""What the API returns, as Python objects: a file's metadata, and the read-only view of a
job that Job and AsyncJob share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A job in one of these statuses changes no more.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired"})
# Suffixes of a results file, and the API format each asks for.
RESULT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class File:
    """An uploaded file: size, line count, purpose, digest and expiry."""

    id: str
    bytes: int
    lines: int
    filename: str
    purpose: str
    created_at: int
    expires_at: int | None
    sha256: str | None
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> File:
        """The file as `GET /v1/files/{id}` returns it."""
        return cls(
            id=data["id"],
            bytes=int(data.get("bytes", 0)),
            lines=int(data.get("lines", 0)),
            filename=str(data.get("filename", "")),
            purpose=str(data.get("purpose", "")),
            created_at=int(data.get("created_at", 0)),
            expires_at=data.get("expires_at"),
            sha256=data.get("sha256"),
            data=dict(data),
        )


class JobView:
    """A job as the API last described it (`data`), with its main fields as attributes."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = dict(data)

    @property
    def id(self) -> str:
        """The job's id."""
        return str(self.data["id"])

    @property
    def status(self) -> str:
        """validating, queued, in_progress, finalizing, completed, failed, cancelling,
        cancelled or expired."""
        return str(self.data.get("status", ""))

    @property
    def done(self) -> bool:
        """Whether the job has ended (its status will not change again)."""
        return self.status in TERMINAL_STATUSES

    @property
    def model(self) -> str:
        """The model the job runs on."""
        return str(self.data.get("model", ""))

    @property
    def counts(self) -> dict[str, int]:
        """Items: {total, completed, failed}."""
        return dict(self.data.get("counts") or {"total": 0, "completed": 0, "failed": 0})

    @property
    def progress(self) -> float:
        """Finished items over total, 0 to 1."""
        return float(self.data.get("progress") or 0.0)

    @property
    def throughput(self) -> float | None:
        """Items per second since the job started."""
        return self.data.get("throughput")

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds until the job ends."""
        return self.data.get("eta_seconds")

    @property
    def errors(self) -> dict[str, Any] | None:
        """A file job's validation findings: {data: [{line, code, message}], invalid_lines}."""
        return self.data.get("errors")

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"<{type(self).__name__} {self.id} {self.status} "
            f"{c.get('completed', 0) + c.get('failed', 0)}/{c.get('total', 0)}>"
        )


def format_of_path(path: str, fmt: str | None) -> str:
    """The results format to download into a file: the one given, else by its suffix."""
    if fmt is not None:
        return fmt
    for suffix, name in RESULT_FORMATS.items():
        if path.lower().endswith(suffix):
            return name
    return "jsonl"
