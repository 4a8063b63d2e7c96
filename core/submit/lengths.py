"""The sort key of length bucketing, one rule for every job of a model: the model's own
token counts where its tokenizer is on local disk (torch-free), characters otherwise; for
images, their pixels (from each header)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.contracts.images import ImageLimits, image_pixels
from core.contracts.spec import ModelSpec
from core.contracts.token_counts import char_lengths, counter_for


def sort_lengths(
    spec: ModelSpec | None, values: Sequence[Any], image_limits: ImageLimits
) -> tuple[list[int], bool]:
    """(a length per value, whether they are token counts). Token counts go into the
    chunks, so a worker plans micro-batches before tokenising; the runner sorts each chunk
    by exact token length again either way."""
    if spec is not None and spec.task == "classify_image":
        return image_pixels(values, image_limits), False
    counter = counter_for(spec) if spec is not None else None
    if counter is not None:
        return counter(values), True
    return char_lengths(values), False
