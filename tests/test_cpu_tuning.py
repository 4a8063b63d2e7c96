"""CPU tuning that runners apply: oneDNN's kernel cache and glibc's heap thresholds, each
checked in a fresh process against the default it replaces."""

import os
import subprocess
import sys

import pytest
import torch

from models import device as dev
from models import malloc

# A bf16 linear layer over 1,100 row counts, twice: oneDNN compiles one kernel per shape.
_SHAPES_TWICE = """
import sys, torch
from models.device import tune_for_varied_shapes
if sys.argv[1] == "tuned":
    tune_for_varied_shapes(torch.device("cpu"))
layer = torch.nn.Linear(64, 64).to(torch.bfloat16)
with torch.inference_mode():
    for rep in (0, 1):
        print("PASS", rep, flush=True)
        for rows in range(1, 1101):
            layer(torch.ones(rows, 64, dtype=torch.bfloat16))
"""


def _fresh_process(code: str, mode: str, env: dict[str, str]) -> str:
    """What a fresh Python process running code (argument mode) prints."""
    run = [sys.executable, "-c", code, mode]
    return subprocess.run(run, capture_output=True, text=True, check=True, env=env).stdout


def _second_pass_compiles(mode: str) -> tuple[int, int]:
    """(kernels oneDNN compiled in all, those of the second pass) for a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != dev.ONEDNN_CACHE_ENV}
    env["ONEDNN_VERBOSE"] = "profile_create"
    out = _fresh_process(_SHAPES_TWICE, mode, env)
    second = out.partition("PASS 1")[2]
    return out.count("create:cache_miss"), second.count("create:cache_miss")


def test_cpu_kernel_cache_holds_a_jobs_shapes():
    """The default cache (1,024 kernels) forgets 1,100 shapes before they come again; the
    widened one keeps them all, so the second pass compiles nothing."""
    compiled, again = _second_pass_compiles("default")
    if compiled == 0:
        pytest.skip("oneDNN does not run bf16 matmuls on this CPU")
    assert again >= 1000
    compiled, again = _second_pass_compiles("tuned")
    assert compiled >= 1000 and again == 0


def test_kernel_cache_setting_leaves_an_operators_value_and_gpus_alone():
    env = {dev.ONEDNN_CACHE_ENV: "64"}
    dev.tune_for_varied_shapes(torch.device("cpu"), env)
    assert env == {dev.ONEDNN_CACHE_ENV: "64"}
    env = {}
    dev.tune_for_varied_shapes(torch.device("cpu"), env)
    assert env == {dev.ONEDNN_CACHE_ENV: str(dev.ONEDNN_CACHE_CAPACITY)}
    env = {}
    dev.tune_for_varied_shapes(torch.device("meta"), env)
    assert env == {}


# Forty rounds of twelve tensors of mixed sizes (up to 24 MiB), allocated then freed
# together, as a forward pass does; prints the page faults of the last thirty rounds.
_ALLOC_ROUNDS = """
import random, resource, sys, torch
from models.malloc import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory({})
rng, faults = random.Random(0), []
for _ in range(40):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rows = [torch.ones(rng.randrange(1 << 16, 6 << 20)) for _ in range(12)]
    del rows
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[10:]))
"""


def _late_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in malloc.OPERATOR_SETTINGS}
    env.pop("GLIBC_TUNABLES", None)
    return int(_fresh_process(_ALLOC_ROUNDS, mode, env))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_memory_is_reused_with_far_fewer_page_faults():
    """By default glibc hands the freed tensors back to the kernel and faults them in again;
    with the runners' thresholds the heap keeps them. Measured here over the last 30 rounds:
    44,000 to 119,000 faults by default, 0 to 4,200 kept (the heap still growing to its
    high-water mark as sizes vary)."""
    default = _late_faults("default")
    if default < 1000:
        pytest.skip(f"this C library kept its heap by itself ({default} faults)")
    assert _late_faults("kept") * 5 < default


def test_malloc_settings_of_an_operator_are_left_alone():
    assert not malloc.keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert not malloc.keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"})
