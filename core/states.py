"""The job and chunk state machines, as pure functions over plain values."""

from __future__ import annotations

from collections.abc import Mapping

# Job statuses (the public contract).
VALIDATING = "validating"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
FINALIZING = "finalizing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLING = "cancelling"
CANCELLED = "cancelled"
EXPIRED = "expired"

JOB_STATUSES = (
    VALIDATING,
    QUEUED,
    IN_PROGRESS,
    FINALIZING,
    COMPLETED,
    FAILED,
    CANCELLING,
    CANCELLED,
    EXPIRED,
)
JOB_TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, EXPIRED})
JOB_ACTIVE = frozenset({QUEUED, IN_PROGRESS})

JOB_TRANSITIONS: Mapping[str, frozenset[str]] = {
    VALIDATING: frozenset({QUEUED, FAILED, CANCELLED, EXPIRED}),
    QUEUED: frozenset({IN_PROGRESS, FINALIZING, CANCELLING, CANCELLED, COMPLETED, EXPIRED}),
    IN_PROGRESS: frozenset({FINALIZING, COMPLETED, CANCELLING, EXPIRED}),
    # Batches finalize (write their output and error files) before they end, however
    # they end.
    FINALIZING: frozenset({COMPLETED, FAILED, CANCELLED, EXPIRED}),
    CANCELLING: frozenset({CANCELLED, FINALIZING}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}

# Chunk statuses (internal).
C_PENDING = "pending"
C_QUEUED = "queued"
C_RUNNING = "running"
C_DONE = "done"
C_FAILED = "failed"
C_CANCELLED = "cancelled"

CHUNK_TERMINAL = frozenset({C_DONE, C_FAILED, C_CANCELLED})
CHUNK_LEASED = frozenset({C_QUEUED, C_RUNNING})
CHUNK_OPEN = frozenset({C_PENDING, C_QUEUED, C_RUNNING})
CHUNK_STARTED = frozenset({C_RUNNING}) | CHUNK_TERMINAL

CHUNK_TRANSITIONS: Mapping[str, frozenset[str]] = {
    C_PENDING: frozenset({C_QUEUED, C_CANCELLED}),
    C_QUEUED: frozenset({C_RUNNING, C_PENDING, C_CANCELLED}),
    C_RUNNING: frozenset({C_DONE, C_PENDING, C_FAILED, C_CANCELLED}),
    C_DONE: frozenset(),
    C_FAILED: frozenset(),
    C_CANCELLED: frozenset(),
}


def can_transition(current: str, target: str, *, table: Mapping[str, frozenset[str]]) -> bool:
    """Whether `current -> target` is a legal move in the given state table."""
    return target in table.get(current, frozenset())


def job_status_after_chunks(current: str, chunk_statuses: Mapping[str, int]) -> str:
    """The job status implied by its chunk counts per status, given its current status.

    A job is finished when no chunk is pending, queued or running: `cancelled` if it was
    being cancelled, else `completed` (per-item failures show in its counts, as in the
    OpenAI batch API). A job with a started or finished chunk is `in_progress`.
    """
    if current in JOB_TERMINAL:
        return current
    open_chunks = sum(n for s, n in chunk_statuses.items() if s not in CHUNK_TERMINAL)
    if open_chunks == 0:
        return CANCELLED if current == CANCELLING else COMPLETED
    if current == CANCELLING:
        return CANCELLING
    started = chunk_statuses.get(C_RUNNING, 0) + sum(
        chunk_statuses.get(s, 0) for s in CHUNK_TERMINAL
    )
    if current == QUEUED and started:
        return IN_PROGRESS
    return current


def expired_lease_target(
    *, status: str, attempts: int, max_attempts: int, job_cancelling: bool
) -> str:
    """Where a chunk whose lease ran out goes: back to pending, cancelled, or failed for good.

    A queued chunk whose message was lost never started, so it costs no attempt.
    """
    if job_cancelling:
        return C_CANCELLED
    if status == C_RUNNING and attempts >= max_attempts:
        return C_FAILED
    return C_PENDING


def finalizing_instead(target: str, *, has_files: bool, finish_as: str | None) -> str | None:
    """For a job that ends by writing output files (a batch): the terminal status it will
    take once they are written, when `target` ends it; None when it does not finalize.

    A batch whose completion window passed is stopped like a cancelled one but ends
    `expired` (its finish_as is set when the window passes).
    """
    if not has_files or target not in (COMPLETED, CANCELLED):
        return None
    return finish_as or target


def unrun_items(status: str, *, total: int, completed: int, failed: int) -> int:
    """Items of a job that never ran because it was stopped (cancelled, or a batch past
    its window): once it has ended every chunk is done, failed or cancelled, and a
    cancelled chunk keeps no results, so they are the ones neither completed nor failed.
    0 for any other status (while it stops, running chunks may still finish)."""
    if status not in (CANCELLED, EXPIRED):
        return 0
    return max(0, total - completed - failed)
