"""What only a real GPU can check, on all-MiniLM-L6-v2 and the tiny causal model:

    python bench/gpu_check.py [--json PATH]

1. device and dtype choice: cuda:0, `auto` = bf16 where the card supports it, else fp16;
2. embed batch invariance on CUDA at fp32 (batched against one at a time, max |diff|) and
   CUDA fp32 against the CPU's fp32;
3. reduced precision on CUDA: bf16 and fp16 against fp32, minimum cosine per item;
4. out-of-memory back-off on a real torch.cuda.OutOfMemoryError: the process is capped at
   its current allocation plus `--oom-headroom-mib` and given one micro-batch far larger;
   the runner must halve, keep the lowered budget, fail nothing, and match the uncapped run;
5. greedy generation on CUDA: batched against one prompt at a time, text for text;
6. pinning: `sluice worker --gpu N` with N past the visible cards exits with its message.

Exit status 1 if a check fails; 2 without a CUDA device. The CPU test suite covers the same
code paths with faked devices and injected errors; this is the real-device counterpart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log  # noqa: E402 - needs the root on sys.path
from bench.throughput import DEFAULT_DATA_DIR, load_mix  # noqa: E402

MIB = 1 << 20


class Checks:
    """Collects figures and pass/fail lines."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.failed: list[str] = []

    def check(self, name: str, ok: bool, detail: str) -> None:
        log(f"{'pass' if ok else 'FAIL'}  {name}: {detail}")
        self.figures.setdefault("checks", {})[name] = {"ok": ok, "detail": detail}
        if not ok:
            self.failed.append(name)


def vectors(results: list[Any]) -> np.ndarray:
    """A matrix of embed outputs (a failed item is a row of NaN)."""
    width = next(len(r.output) for r in results if r.ok)
    return np.stack(
        [
            np.asarray(r.output, np.float32) if r.ok else np.full(width, np.nan, np.float32)
            for r in results
        ]
    )


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine of two matrices (NaN rows count as -1)."""
    dots = (a.astype(np.float64) * b).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(np.isfinite(dots), dots / np.maximum(norms, 1e-12), -1.0)
    return float(cos.min())


def check_devices(c: Checks) -> None:
    import torch

    from models.device import pick_device, pick_dtype

    device = pick_device()
    auto = pick_dtype("auto", device)
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    c.figures["device"] = {
        "name": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / (1 << 30), 1),
    }
    c.check("pick_device", device.type == "cuda", str(device))
    c.check("dtype auto", auto == want, f"{auto} (bf16 supported: {want == torch.bfloat16})")
    fp16 = pick_dtype("float16", device)
    c.check("dtype float16 kept on GPU", fp16 == torch.float16, str(fp16))


def check_embed(c: Checks, spec: Any, texts: list[str]) -> np.ndarray:
    """Batch invariance on CUDA at fp32, CUDA against CPU, reduced precision. Returns the
    CUDA fp32 vectors."""
    import torch

    from core.contracts.params import EmbedParams
    from models.embed import EmbedRunner

    params = EmbedParams()
    fp32 = EmbedRunner(spec.model_copy(update={"dtype": "float32"}))
    batched = vectors(fp32.run(texts, params))
    alone = np.stack([vectors(fp32.run([t], params))[0] for t in texts[:300]])
    diff = float(np.abs(batched[:300] - alone).max())
    c.check("embed fp32 batched = alone (CUDA)", diff <= 1e-4, f"max |diff| {diff:.2e} (<= 1e-4)")
    del fp32
    torch.cuda.empty_cache()
    cpu = EmbedRunner(spec.model_copy(update={"dtype": "float32"}), torch.device("cpu"))
    on_cpu = vectors(cpu.run(texts[:300], params))
    cos = min_cosine(on_cpu, batched[:300])
    c.check("embed fp32 CUDA = CPU", cos >= 0.99999, f"min cosine {cos:.7f} (>= 0.99999)")
    del cpu
    for dtype in ("bfloat16", "float16"):
        runner = EmbedRunner(spec.model_copy(update={"dtype": dtype}))
        got = vectors(runner.run(texts, params))
        cos = min_cosine(got, batched)
        c.figures[f"min_cosine_{dtype}_vs_fp32"] = cos
        c.check(f"embed {dtype} vs fp32", cos >= 0.999, f"min cosine {cos:.6f} (>= 0.999)")
        del runner
        torch.cuda.empty_cache()
    return batched


def long_texts(texts: list[str], n: int) -> list[str]:
    """N texts joined from the corpus lines, each long enough to reach max_length."""
    out, at = [], 0
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) for p in parts) < 1600:
            parts.append(texts[at % len(texts)])
            at += 1
        out.append(" ".join(parts))
    return out


def check_oom(c: Checks, spec: Any, texts: list[str], headroom_mib: int) -> None:
    """A real OutOfMemoryError from the caching allocator, under a per-process cap."""
    import torch

    from core.contracts.params import EmbedParams
    from models.embed import EmbedRunner

    params = EmbedParams()
    docs = long_texts(texts, 2048)
    huge = 1 << 22  # every item in one micro-batch: 2048 x 256 tokens
    free = EmbedRunner(spec.model_copy(update={"dtype": "float32", "gpu_max_batch_tokens": huge}))
    expected = vectors(free.run(docs, params))
    del free
    torch.cuda.empty_cache()
    runner = EmbedRunner(spec.model_copy(update={"dtype": "float32", "gpu_max_batch_tokens": huge}))
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_allocated() + headroom_mib * MIB
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        started = time.perf_counter()
        results = runner.run(docs, params)
        seconds = time.perf_counter() - started
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    failed = sum(not r.ok for r in results)
    events, budget = runner.executor.oom_events, runner.executor.max_batch_tokens
    c.figures["oom"] = {
        "cap_mib": cap // MIB,
        "oom_events": events,
        "budget_after": budget,
        "seconds": seconds,
        "failed": failed,
    }
    detail = f"{events} OOM events under a {cap // MIB} MiB cap"
    c.check("OOM back-off happened", events > 0, detail)
    c.check("OOM budget lowered and kept", budget < huge, f"{huge} -> {budget} tokens")
    c.check("OOM: no item failed", failed == 0, f"{failed} of {len(docs)} failed")
    cos = min_cosine(vectors(results), expected) if not failed else float("nan")
    c.check("OOM: results = uncapped run", cos >= 0.99999, f"min cosine {cos:.7f}")
    before = runner.executor.oom_events
    runner.run(docs[:512], params)
    c.check(
        "OOM: later runs use the lowered budget",
        runner.executor.oom_events == before,
        f"{runner.executor.oom_events - before} new OOM events",
    )
    del runner
    torch.cuda.empty_cache()


def check_generate(c: Checks, texts: list[str]) -> None:
    """Greedy generation on CUDA, batched against one prompt at a time."""
    from core.contracts.params import GenerateParams
    from core.contracts.spec import ModelSpec
    from models.generate import GenerateRunner
    from tests.tiny_models import bench_texts, build_tiny_causal

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_causal(Path(tmp) / "tiny-causal", bench_texts(2000, seed=1), seed=3)
        spec = ModelSpec(
            name="tiny-causal",
            task="generate",
            source=str(path),
            dtype="float32",
            max_length=256,
            max_batch_tokens=4096,
            gpu_max_batch_tokens=65536,
        )
        runner = GenerateRunner(spec)
        params = GenerateParams(max_new_tokens=16, temperature=0)
        prompts = [" ".join(texts[i : i + 1 + i % 3])[:300] for i in range(128)]
        batched = [r.output["text"] for r in runner.run(prompts, params)]
        alone = [runner.run([p], params)[0].output["text"] for p in prompts]
    same = sum(a == b for a, b in zip(batched, alone, strict=True))
    c.check(
        "generate greedy batched = alone (CUDA, fp32)",
        same == len(prompts),
        f"{same} of {len(prompts)} texts equal",
    )


def sweep_budgets(c: Checks, spec: Any, texts: list[str], budgets: list[int]) -> None:
    """items/s of the in-process embed loop at the auto dtype per GPU token budget (a
    figure for choosing gpu_max_batch_tokens; no check)."""
    import torch

    from core.contracts.params import EmbedParams
    from models.embed import EmbedRunner

    params = EmbedParams()
    rates: dict[str, float] = {}
    for budget in budgets:
        runner = EmbedRunner(spec.model_copy(update={"gpu_max_batch_tokens": budget}))
        runner.run(texts[:256], params)
        torch.cuda.synchronize()
        started = time.perf_counter()
        runner.run(texts, params)
        torch.cuda.synchronize()
        rates[str(budget)] = len(texts) / (time.perf_counter() - started)
        log(f"budget {budget:>7} tokens: {rates[str(budget)]:,.0f} items/s ({runner.dtype})")
        del runner
        torch.cuda.empty_cache()
    c.figures["budget_sweep_items_per_s"] = rates


def check_pinning(c: Checks) -> None:
    """`sluice worker --gpu N` past the visible cards exits with its message."""
    import torch

    n = torch.cuda.device_count()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker", "--gpu", str(n + 7)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    said = (proc.stdout + proc.stderr).strip().splitlines()
    tail = said[-1] if said else ""
    c.check(
        f"worker --gpu {n + 7} refused ({n} visible)",
        proc.returncode != 0 and "no CUDA device is visible" in proc.stdout + proc.stderr,
        f"exit {proc.returncode}: {tail[:160]}",
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all-minilm-l6-v2")
    p.add_argument("--items", type=int, default=4000, help="embed items compared")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--oom-headroom-mib", type=int, default=1024)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--sweep",
        default="2048,8192,32768,65536,131072",
        help="GPU token budgets to time the embed loop at (empty: none)",
    )
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        log("no CUDA device: nothing to check here (the CPU suite fakes the devices)")
        raise SystemExit(2)
    from core.contracts.spec import load_registry

    spec = load_registry()[args.model]
    texts = [x["input"] for x in load_mix(args.data_dir, args.items, 0)]
    c = Checks()
    check_devices(c)
    check_embed(c, spec, texts)
    check_oom(c, spec, texts, args.oom_headroom_mib)
    check_generate(c, texts)
    check_pinning(c)
    if args.sweep:
        sweep_budgets(c, spec, texts, [int(b) for b in args.sweep.split(",")])
    c.figures["failed"] = c.failed
    if args.json:
        args.json.write_bytes(orjson.dumps(c.figures, option=orjson.OPT_INDENT_2))
    log(f"{len(c.figures['checks']) - len(c.failed)} checks passed, {len(c.failed)} failed")
    if c.failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
