"""Choosing the device and dtype a runner uses."""

from __future__ import annotations

import os
import warnings
from collections.abc import MutableMapping
from functools import lru_cache
from pathlib import Path

import torch

from models.malloc import keep_freed_memory

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# CPU flags (Linux /proc/cpuinfo) that mean bf16 matrix work runs natively, not emulated.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def pick_device() -> torch.device:
    """The first visible GPU if any (the worker pinned itself before torch loaded), else CPU."""
    return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(cpu_flags(text) & NATIVE_BF16_FLAGS)


def pick_dtype(
    requested: str, device: torch.device, *, native_bf16_cpu: bool | None = None
) -> torch.dtype:
    """The dtype for a spec's `dtype` on a device.

    Explicit values win (but fp16 on CPU is slow and lossy, so it becomes fp32). `auto` is
    bf16 on GPUs that support it and fp16 on older ones; on CPU, bf16 where the CPU
    computes it natively, else fp32.
    """
    if requested != "auto":
        dtype = _DTYPES[requested]
        if device.type == "cpu" and dtype == torch.float16:
            return torch.float32
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    native = cpu_has_native_bf16() if native_bf16_cpu is None else native_bf16_cpu
    return torch.bfloat16 if native else torch.float32


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which a container or taskset cuts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def overlaps_tokenizing(device: torch.device, torch_threads: int, cpus: int) -> bool:
    """Whether tokenising the next micro-batch on a thread of its own gains time while the
    current one runs: yes beside a GPU, or where torch leaves a CPU free. Where torch's
    threads take every CPU, a tokeniser thread only takes cores from them mid-pass (the
    batch runs as slowly as its slowest thread): on 2 CPUs with 2 torch threads, the
    overlapped loop ran 5.5% slower than tokenising each chunk first in one call."""
    return device.type != "cpu" or torch_threads < cpus


# oneDNN, which runs torch's bf16 matmuls on a CPU, compiles a kernel (a "primitive") per
# input shape and keeps the last 1,024 by default. A micro-batch's linear layers see
# rows x width as one dimension, so a 20,000-text job makes about 2,000 shapes: the cache
# thrashed and every pass compiled them all again (2 ms each, 3 s a pass). 4,096 holds them.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 4096


def tune_for_varied_shapes(
    device: torch.device, env: MutableMapping[str, str] | None = None
) -> None:
    """Prepare a device for a new (rows, width) shape at nearly every micro-batch.

    On a CPU, widen oneDNN's kernel cache (unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is set
    already). oneDNN reads it when it compiles its first kernel, so this comes before the
    first forward pass of the process. all-MiniLM-L6-v2 in bf16 (AMX) took 21% less time
    over a 20,000-text job cut into chunks with 4,096 than with the default 1,024 (19.3 s
    against 24.6 s a pass), and its memory stopped growing from pass to pass. Also keep
    freed memory in the heap (models/malloc.py): the activations of one micro-batch are
    reused by the next instead of being faulted in again.

    On a GPU, turn off cuDNN's attention. cuDNN builds an execution plan per new shape for
    bf16/fp16 attention: on an H100 the first pass over 11 shapes took 4.5 s against 0.5 s
    at fp32, where cuDNN is not used. SDPA then takes its memory-efficient kernel, which
    needs no plan."""
    if device.type == "cpu":
        (os.environ if env is None else env).setdefault(
            ONEDNN_CACHE_ENV, str(ONEDNN_CACHE_CAPACITY)
        )
        keep_freed_memory(env)
    elif device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def quantize_int8(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Dynamic int8 quantisation of a float32 model's linear layers (CPU only)."""
    if device.type != "cpu":
        raise ValueError("quantize: int8 is a CPU option; on a GPU use dtype bfloat16/float16")
    # torch announces the end of its quantized-tensor API (pytorch#184982); until a
    # successor exists this is the CPU int8 path, so its notice is expected here only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
