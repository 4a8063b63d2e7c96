"""Choosing an image model's memory layout: channels_last (NHWC) makes some convolutions
faster and others slower, by model, dtype and device, so `channels_last: auto` times both
on a small probe batch when the worker loads the model and keeps the faster."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

# channels_last must win by this much to be kept: the timing is of a few small batches.
MIN_GAIN = 1.05
PROBE_IMAGES = 4
PROBE_RUNS = 3
MAX_RUNS = 50
MIN_TOTAL_SECONDS = 0.25


def best_seconds(run: Callable[[], object], runs: int = PROBE_RUNS) -> float:
    """The fastest of at least `runs` timed calls (more, up to MAX_RUNS, while they add up
    to under MIN_TOTAL_SECONDS: a tiny model's calls are too short to time once), after
    one untimed call (kernels compile)."""
    run()
    best, total, done = float("inf"), 0.0, 0
    while done < runs or (total < MIN_TOTAL_SECONDS and done < MAX_RUNS):
        started = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        best, total, done = min(best, seconds), total + seconds, done + 1
    return best


def prefers_channels_last(
    model: torch.nn.Module, forward: Callable[[torch.Tensor], object], probe: torch.Tensor
) -> tuple[bool, float]:
    """Whether forward runs the probe batch at least MIN_GAIN times faster with the model
    and its input in channels_last, and the speed-up measured. The model is left in the
    layout chosen."""
    with torch.inference_mode():
        default = best_seconds(lambda: forward(probe))
    # Converted outside inference mode: parameters made there could never take part in
    # autograd again, and explanations need their gradients to flow.
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    nhwc = probe.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        last = best_seconds(lambda: forward(nhwc))
    gain = default / last if last > 0 else 1.0
    if gain < MIN_GAIN:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return False, gain
    return True, gain
