"""Work per model as the operator sees it: jobs by status, and the chunks and items not yet
done. Every model's figures in two grouped queries (on indexed columns), not one per model."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import states
from core.tables import Chunk, Job


@dataclass
class ModelBacklog:
    """A model's unfinished chunks and their items, by chunk status (pending, queued,
    running)."""

    chunks: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    @property
    def queue_depth(self) -> int:
        """Chunks waiting to start: pending in the database or queued in the broker."""
        return self.chunks.get(states.C_PENDING, 0) + self.chunks.get(states.C_QUEUED, 0)

    @property
    def pending_items(self) -> int:
        """Items not finished yet: in chunks that are pending, queued or running."""
        return sum(self.items.values())


def job_counts(*, session: Session) -> dict[tuple[str, str], int]:
    """Jobs per (model, status)."""
    rows = session.execute(
        select(Job.model, Job.status, func.count()).group_by(Job.model, Job.status)
    )
    return {(model, status): int(n) for model, status, n in rows}


def model_backlogs(*, session: Session) -> dict[str, ModelBacklog]:
    """Each model's unfinished chunks and items (models with none are absent)."""
    rows = session.execute(
        select(Chunk.model, Chunk.status, func.count(), func.coalesce(func.sum(Chunk.n_items), 0))
        .where(Chunk.status.in_(states.CHUNK_OPEN))
        .group_by(Chunk.model, Chunk.status)
    )
    out: dict[str, ModelBacklog] = {}
    for model, status, chunks, items in rows:
        backlog = out.setdefault(model, ModelBacklog())
        backlog.chunks[status] = int(chunks)
        backlog.items[status] = int(items)
    return out
