"""What a runner returns per item: an output or an error, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: `output` on success, else `error_code` and `error_message`."""

    output: Any = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error_code is None


class Cancelled(Exception):
    """Raised inside a runner when the job was cancelled or the lease was lost."""
