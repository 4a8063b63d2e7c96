"""A job's item counts as they are reported outside the job's own view: by OpenAI's batch
object (`request_counts`) and by webhook events. One rule, so the two never disagree."""

from __future__ import annotations

from core import states

# Endings that leave requests unrun; a batch's error file then holds a line for each.
ENDINGS_WITH_UNRUN = (states.CANCELLED, states.EXPIRED)


def reported_counts(
    *, status: str, total: int, completed: int, failed: int, has_error_file: bool
) -> dict[str, int]:
    """{total, completed, failed}; once a batch has ended cancelled or expired and its
    error file is written, requests that never ran count as failed (they are in that
    file), as OpenAI counts them."""
    if status in ENDINGS_WITH_UNRUN and has_error_file:
        failed = max(total - completed, failed)
    return {"total": total, "completed": completed, "failed": failed}
