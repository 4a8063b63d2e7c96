"""Running micro-batches with OOM back-off and per-item error isolation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from models.observer import IGNORED, RunObserver
from models.results import ItemResult

log = logging.getLogger(__name__)
T = TypeVar("T")

ForwardFn = Callable[[Sequence[int]], Sequence[T]]


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is a device out-of-memory error."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


class IsolatingExecutor:
    """Calls forward() on a micro-batch; on OOM halves it (and lowers the budget for
    later plans), on any other error bisects so that only the failing item fails."""

    def __init__(self, max_batch_tokens: int) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.oom_events = 0
        self.observer: RunObserver = IGNORED

    def back_off(self, budget: int) -> None:
        """Record an OOM that a forward handled itself (at a smaller size): later plans
        keep under budget."""
        self.oom_events += 1
        self.observer.oom_backoff()
        self.max_batch_tokens = max(1, min(self.max_batch_tokens, budget))
        log.warning("out of memory inside a batch; budget lowered to %d", self.max_batch_tokens)

    def run(
        self,
        positions: Sequence[int],
        forward: ForwardFn[T],
        on_result: Callable[[int, ItemResult], None],
        widest: int,
    ) -> None:
        """Run positions through forward, reporting each item's result via on_result."""
        try:
            outputs = forward(positions)
        except Exception as exc:
            # Only a summary leaves this block: the exception's traceback holds the failed
            # forward's frames and with them its activations, which a retry started in
            # here would still be holding (on a GPU, every retry would run out of memory).
            oom, error = is_oom(exc), f"{type(exc).__name__}: {exc}"
        else:
            for pos, out in zip(positions, outputs, strict=True):
                # A forward may give whole results (an output with its explanation).
                on_result(pos, out if isinstance(out, ItemResult) else ItemResult(output=out))
            return
        if len(positions) == 1:
            code = "out_of_memory" if oom else "inference_error"
            on_result(positions[0], ItemResult(error_code=code, error_message=error))
            return
        if oom:
            self.oom_events += 1
            self.observer.oom_backoff()
            self.max_batch_tokens = max(widest, (len(positions) * widest) // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning(
                "out of memory on %d items; budget lowered to %d tokens",
                len(positions),
                self.max_batch_tokens,
            )
        half = len(positions) // 2
        self.run(positions[:half], forward, on_result, widest)
        self.run(positions[half:], forward, on_result, widest)
