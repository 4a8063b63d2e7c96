"""Choosing the device and dtype a runner uses."""

from __future__ import annotations

import torch

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device() -> torch.device:
    """The first visible GPU if any (the worker pinned itself before torch loaded), else CPU."""
    return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The dtype for a spec's `dtype` on a device: explicit values win; `auto` is bf16
    where the GPU supports it, fp16 on older GPUs, fp32 on CPU."""
    if requested != "auto":
        dtype = _DTYPES[requested]
        if device.type == "cpu" and dtype == torch.float16:
            return torch.float32  # CPU fp16 matmuls are slow and lossy
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
