"""Pinning a worker process to one GPU, before torch is imported. Torch-free."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping


class PinningTooLate(RuntimeError):
    """torch was imported before the worker pinned itself; CUDA already saw every GPU."""


def pin_to_gpu(gpu: int | None, env: MutableMapping[str, str] | None = None) -> str | None:
    """Make only GPU `gpu` visible to this process (None: leave visibility as it is).

    Returns the CUDA_VISIBLE_DEVICES value in force. Must run before `import torch`.
    """
    env = os.environ if env is None else env
    if gpu is None:
        return env.get("CUDA_VISIBLE_DEVICES")
    if gpu < 0:
        raise ValueError(f"--gpu must be >= 0, got {gpu}")
    if "torch" in sys.modules:
        raise PinningTooLate("pin_to_gpu must run before torch is imported")
    env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    # Stable numbering: index N means the same card as nvidia-smi's N.
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env["CUDA_VISIBLE_DEVICES"]
