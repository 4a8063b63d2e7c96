"""A first pass of each model when its worker starts, so the first job does not pay for
it: on a CPU, oneDNN compiles a kernel for each matmul shape it meets (about 2 ms each),
and a cold runner timed on a file's first lines (to size its chunks) took 1 to 2 s where
a warm one took 0.1 to 0.4 s."""

from __future__ import annotations

import logging
import time
from typing import Any

from core.contracts.params import parse_params

log = logging.getLogger(__name__)
# Words per warm-up text: the short and middling lengths most inputs have, in the
# padded widths the planner makes of them.
WARM_UP_WORDS = (1, 4, 8, 16, 24, 32, 48, 64, 96, 128)


def warm_up_inputs(task: str) -> tuple[list[Any], dict[str, Any]]:
    """Inputs and params of one warm-up pass for a task."""
    if task == "classify_image":
        return _warm_up_images(), {}
    texts = [" ".join(["warm"] * n) for n in WARM_UP_WORDS]
    if task == "generate":
        return texts[:4], {"max_new_tokens": 2, "temperature": 0}
    return texts * 4, {}


def warm_up(runner: Any) -> float:
    """Run the model once on warm-up inputs; the seconds it took."""
    inputs, params = warm_up_inputs(runner.task)
    started = time.perf_counter()
    runner.run(inputs, params=parse_params(runner.task, params))
    return time.perf_counter() - started


def _warm_up_images() -> list[str]:
    """A few small PNG images (data URLs) of different sizes and colours."""
    import io

    from PIL import Image

    from core.contracts.images import data_url

    out = []
    for n, side in enumerate((24, 64, 160, 224)):
        buffer = io.BytesIO()
        Image.new("RGB", (side, side + 8), (40 * n, 200 - 40 * n, 90)).save(buffer, "PNG")
        out.append(data_url(buffer.getvalue()))
    return out * 2
