"""What a runner reports while it runs, for whoever watches (the worker turns it into
metrics; models/ itself records nothing and knows no metrics library)."""

from __future__ import annotations

from typing import Any


class RunObserver:
    """Receives a runner's micro-batches and out-of-memory back-offs; this base ignores
    them (a runner nobody watches)."""

    def micro_batch(self, *, items: int, real_units: int, padded_units: int) -> None:
        """A micro-batch is about to run: its items, and the tokens (or images) they hold
        against what the padded batch computes."""

    def oom_backoff(self) -> None:
        """The device ran out of memory and the batch budget was lowered."""


IGNORED = RunObserver()


def attach_observer(runner: Any, observer: RunObserver) -> None:
    """Send a loaded runner's reports, and its executors' back-offs, to `observer`."""
    runner.observer = observer
    for name in ("executor", "explain_executor"):
        executor = getattr(runner, name, None)
        if executor is not None:
            executor.observer = observer


def padded_batch(lengths: list[int]) -> tuple[int, int]:
    """The real and the padded token count of a micro-batch of these lengths (every row
    padded to the longest)."""
    return sum(lengths), len(lengths) * max(lengths, default=0)
