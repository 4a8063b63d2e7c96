"""Explanations of image classifications: integrated gradients on the preprocessed pixel
tensor, against an all-zeros baseline in that space (for a mean/std-normalised model, an
image of the mean colour), summed over channels and pooled to a grid whose cells add up
to the raw sum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from models.batching import IsolatingExecutor
from models.integrated_gradients import integrated_gradients, pick_targets

GRID = 14


def pool_grid(maps: torch.Tensor, size: int = GRID) -> torch.Tensor:
    """(k, H, W) per-pixel maps summed into (k, min(size, H), min(size, W)) cells: cell i
    holds rows floor(i * H / rows) up to floor((i + 1) * H / rows), and likewise columns,
    so every pixel lands in exactly one cell and the sum is kept."""
    _, height, width = maps.shape
    rows, cols = min(size, height), min(size, width)
    row_cell = torch.arange(height, device=maps.device) * rows // height
    col_cell = torch.arange(width, device=maps.device) * cols // width
    by_rows = torch.zeros((len(maps), rows, width), dtype=maps.dtype, device=maps.device)
    by_rows.index_add_(1, row_cell, maps)
    grid = torch.zeros((len(maps), rows, cols), dtype=maps.dtype, device=maps.device)
    return grid.index_add_(2, col_cell, by_rows)


def explain_images(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    explain: Any,
    labels: list[str],
    executor: IsolatingExecutor,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The logits of a micro-batch of preprocessed images (k, C, H, W) and an explanation
    per image, in passes of at most the executor's budget of images (lowered there if a
    pass runs out of memory)."""
    k = len(pixels)
    baselines = torch.zeros_like(pixels)
    with torch.no_grad():  # both ends of every path
        ends = logits_of(torch.cat([pixels, baselines]))
    logits, base_logits = ends[:k], ends[k:]
    targets = pick_targets(logits.cpu(), explain.target, labels)
    attributions = integrated_gradients(
        lambda path, rows: logits_of(path),
        pixels,
        baselines,
        targets,
        explain.steps,
        executor.max_batch_tokens,
        executor.back_off,
    ).sum(1)
    grids = pool_grid(attributions).cpu().tolist()
    totals = attributions.to(torch.float64).sum((1, 2)).tolist()
    deltas = (logits - base_logits).gather(1, targets.to(logits.device).unsqueeze(1))
    explanations = [
        {
            "target": labels[int(targets[row])],
            "grid": grids[row],
            "sum": totals[row],
            "delta": float(deltas[row]),
        }
        for row in range(k)
    ]
    return logits, explanations
