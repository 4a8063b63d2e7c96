"""Chunk statistics: the measured compute time of a model's recent chunks."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import states
from core.tables import Chunk


def recent_chunk_seconds(*, session: Session, model: str, sample: int = 20) -> float:
    """Mean compute time of the model's last finished chunks (0 before any finishes)."""
    recent = (
        select(Chunk.compute_seconds)
        .where(
            Chunk.model == model, Chunk.status == states.C_DONE, Chunk.compute_seconds.is_not(None)
        )
        .order_by(Chunk.id.desc())
        .limit(sample)
        .subquery()
    )
    return float(session.scalar(select(func.avg(recent.c.compute_seconds))) or 0.0)


def item_seconds(*, session: Session, model: str, sample: int = 20) -> float | None:
    """Compute seconds per item of the model's last finished chunks (None before any)."""
    recent = (
        select(Chunk.compute_seconds, Chunk.n_items)
        .where(
            Chunk.model == model,
            Chunk.status == states.C_DONE,
            Chunk.compute_seconds.is_not(None),
            Chunk.n_items > 0,
        )
        .order_by(Chunk.id.desc())
        .limit(sample)
        .subquery()
    )
    seconds, items = session.execute(
        select(func.sum(recent.c.compute_seconds), func.sum(recent.c.n_items))
    ).one()
    return float(seconds) / int(items) if seconds and items else None
