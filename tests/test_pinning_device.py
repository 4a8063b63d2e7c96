"""GPU pinning before torch loads, and device/dtype choice with faked devices."""

import os
import subprocess
import sys

import pytest
import torch

from models import device as dev
from worker.pinning import PinningTooLate, pin_to_gpu


def test_pin_sets_visible_devices():
    env: dict[str, str] = {}
    code = (
        "import sys; from worker.pinning import pin_to_gpu; env = {}; "
        "print(pin_to_gpu(3, env), env['CUDA_DEVICE_ORDER'], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "PCI_BUS_ID", "False"]
    assert pin_to_gpu(None, env) is None


def test_pin_after_torch_import_refuses():
    assert "torch" in sys.modules  # this test module imported it
    with pytest.raises(PinningTooLate):
        pin_to_gpu(0, {})
    with pytest.raises(ValueError):
        pin_to_gpu(-1, {})


def test_cli_and_api_do_not_import_torch():
    code = (
        "import sys, cli.main, api.app; "
        "print('torch' in sys.modules, 'worker.tasks' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_dtype_choice(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda:0")
    assert dev.pick_dtype("auto", cpu, native_bf16_cpu=False) == torch.float32
    assert dev.pick_dtype("auto", cpu, native_bf16_cpu=True) == torch.bfloat16
    assert dev.pick_dtype("float16", cpu) == torch.float32
    assert dev.pick_dtype("bfloat16", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.pick_dtype("auto", gpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.pick_dtype("auto", gpu) == torch.float16
    assert dev.pick_dtype("float32", gpu) == torch.float32


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device() == torch.device("cuda:0")


def test_cpu_flags_detect_native_bf16():
    info = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n"
    assert "avx512_bf16" in dev.cpu_flags(info)
    assert dev.cpu_flags(info) & dev.NATIVE_BF16_FLAGS
    assert not dev.cpu_flags("flags\t: fpu sse avx2\n") & dev.NATIVE_BF16_FLAGS
    assert dev.cpu_flags("no flags here") == frozenset()


def test_tokenising_overlaps_only_where_a_core_is_spare():
    cpu, gpu = torch.device("cpu"), torch.device("cuda:0")
    assert dev.overlaps_tokenizing(gpu, torch_threads=16, cpus=16)  # the GPU computes
    assert dev.overlaps_tokenizing(cpu, torch_threads=1, cpus=2)
    assert not dev.overlaps_tokenizing(cpu, torch_threads=2, cpus=2)
    assert not dev.overlaps_tokenizing(cpu, torch_threads=4, cpus=2)  # oversubscribed
    assert 1 <= dev.usable_cpus() <= (os.cpu_count() or 1)
