"""What a runner returns per item: an output or an error, never an exception."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: `output` on success, else `error_code` and `error_message`;
    its token usage, whether its input was cut to the model's max_length, and its
    explanation when the job asked for one."""

    output: Any = None
    error_code: str | None = None
    error_message: str | None = None
    usage: dict[str, int] | None = None
    truncated: bool = False
    explanation: Any = None

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error_code is None

    def with_usage(
        self, prompt_tokens: int, completion_tokens: int = 0, truncated: bool = False
    ) -> ItemResult:
        """The same result with its token usage (and truncation) recorded."""
        return replace(
            self,
            truncated=truncated,
            usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        )


def filled(results: list[ItemResult | None]) -> list[ItemResult]:
    """Every slot a result: a slot a runner left empty (a bug) fails its item, not the chunk."""
    missing = ItemResult(error_code="internal_error", error_message="no result produced")
    return [r if r is not None else missing for r in results]


class Cancelled(Exception):
    """Raised inside a runner when the job was cancelled or the lease was lost."""
