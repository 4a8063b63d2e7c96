"""Integrated gradients, batched: the attributions of k inputs, each integrated over its
straight path from a baseline, in passes of (item, interpolation point) rows.

IG_i = (x_i - b_i) * integral over a in [0, 1] of dF/dx_i (b + a (x - b)), whose sum is
F(x) - F(b) (completeness). The integral is a Gauss-Legendre quadrature: exact for
polynomials of degree 2 * steps - 1 along the path, so on a smooth network (GELU, softmax
attention) the completeness error falls far faster than with the Riemann sums (error
~ 1/steps) or the trapezoid rule (~ 1/steps^2); on a piecewise linear one (ReLU) no rule
does better than ~ 1/steps, and Gauss-Legendre is no worse. Captum defaults to it too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from models.batching import is_oom

# The logits (rows, labels) of a pass: its interpolated inputs, and each row's item.
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@lru_cache(maxsize=64)
def quadrature(steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Gauss-Legendre nodes in (0, 1) and their weights (which sum to 1), for steps points."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return tuple((nodes + 1.0) / 2.0), tuple(weights / 2.0)


def pick_targets(logits: torch.Tensor, target: str, labels: list[str]) -> torch.Tensor:
    """Each row's explained label: its best logit for "top", else the named label's index."""
    if target == "top":
        return logits.argmax(dim=-1)
    return torch.full((len(logits),), labels.index(target), dtype=torch.long)


def integrated_gradients(
    score: ScoreFn,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    rows_per_pass: int,
    on_back_off: Callable[[int], None] = lambda rows: None,
) -> torch.Tensor:
    """float32 attributions shaped like inputs (k, ...): each item's target logit,
    integrated along its path from its baseline over `steps` points.

    An item's rows only ever meet other rows in a batch that the model computes row by
    row, so its attributions do not depend on its neighbours. A pass holds at most
    rows_per_pass rows (an item's points may span passes), which bounds memory whatever
    the number of steps; a pass that runs out of memory is retried at half the rows (so
    one long item can still be explained), and on_back_off hears the new size.
    """
    nodes, weights = quadrature(steps)
    # The path in float32 whatever the model's dtype: bf16 nodes would be off by 1e-3.
    start32 = baselines.to(torch.float32)
    diff = inputs.to(torch.float32) - start32
    owner = torch.arange(len(inputs), device=inputs.device).repeat_interleave(steps)
    alpha = torch.tensor(nodes, dtype=torch.float32, device=inputs.device).repeat(len(inputs))
    weight = torch.tensor(weights, dtype=torch.float32, device=inputs.device).repeat(len(inputs))
    shape = (-1,) + (1,) * (inputs.dim() - 1)
    total = torch.zeros(inputs.shape, dtype=torch.float32, device=inputs.device)
    targets = targets.to(inputs.device)
    start, rows_per_pass = 0, max(1, rows_per_pass)
    while start < len(owner):
        part = slice(start, start + rows_per_pass)
        rows = owner[part]
        path = (start32[rows] + alpha[part].view(shape) * diff[rows]).to(inputs.dtype).detach()
        try:
            with torch.enable_grad():
                path.requires_grad_(True)
                chosen = score(path, rows).gather(1, targets[rows].unsqueeze(1)).sum()
                (grad,) = torch.autograd.grad(chosen, path)
        except Exception as exc:
            if not is_oom(exc) or rows_per_pass == 1:
                raise
        else:
            total.index_add_(0, rows, grad.to(torch.float32) * weight[part].view(shape))
            start += len(rows)
            continue
        # Retried out here, once the failed pass's frames (and activations) are freed.
        rows_per_pass //= 2
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        on_back_off(rows_per_pass)
    return diff * total


def freeze(module: torch.nn.Module) -> None:
    """No gradient for a model's own parameters: only the interpolated inputs take one
    (parameters never accumulate .grad, and the backward skips their weight gradients)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
