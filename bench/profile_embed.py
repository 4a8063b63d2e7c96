"""Where the in-process embed loop spends its time, stage by stage, then under cProfile.

    python bench/profile_embed.py [--items 20000] [--dtype bfloat16] [--budget N]

Stages are timed apart (with a device synchronize after each forward): tokenising every
item, building the padded tensors of every planned micro-batch, the forwards, and the
whole `EmbedRunner.run`. Then `run` again under cProfile, its top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import log  # noqa: E402 - needs the root on sys.path
from bench.throughput import DEFAULT_DATA_DIR, load_mix  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all-minilm-l6-v2")
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: spec)")
    p.add_argument("--budget", type=int, default=None, help="token budget (default: spec)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--top", type=int, default=25)
    p.add_argument(
        "--cudnn-sdp", action="store_true", help="leave cuDNN attention on (runners turn it off)"
    )
    args = p.parse_args(argv)
    import torch

    from core.contracts.params import EmbedParams
    from core.contracts.spec import load_registry
    from models.embed import EmbedRunner

    spec = load_registry()[args.model]
    update: dict[str, object] = {}
    if args.dtype:
        update["dtype"] = args.dtype
    if args.budget:
        update.update(max_batch_tokens=args.budget, gpu_max_batch_tokens=args.budget)
    runner = EmbedRunner(spec.model_copy(update=update))
    if args.cudnn_sdp:
        torch.backends.cuda.enable_cudnn_sdp(True)
    texts = [x["input"] for x in load_mix(args.data_dir, args.items, 0)]
    params = EmbedParams()
    cuda = runner.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    runner.run(texts[:256], params)
    sync()
    started = time.perf_counter()
    encodings, _ = runner.tokenize(texts, truncate=True)
    tokenize_s = time.perf_counter() - started
    lengths = [len(e["input_ids"]) for e in encodings]
    plan = runner.plan(lengths)
    started = time.perf_counter()
    batches = [runner.tensors([encodings[i] for i in batch]) for batch in plan]
    sync()
    tensors_s = time.perf_counter() - started
    forward_s = pool_s = 0.0
    with torch.inference_mode():
        for batch in batches:
            t0 = time.perf_counter()
            hidden = runner.model(**batch).last_hidden_state
            sync()
            t1 = time.perf_counter()
            runner.forward(batch, params)  # the whole forward again, pooling and copy included
            sync()
            forward_s += t1 - t0
            pool_s += (time.perf_counter() - t1) - (t1 - t0)
            del hidden
    started = time.perf_counter()
    runner.run(texts, params)
    sync()
    run_s = time.perf_counter() - started
    n = len(texts)
    log(
        f"{n:,} items, {sum(lengths):,} tokens, {len(plan)} micro-batches, budget "
        f"{runner.executor.max_batch_tokens}, {runner.dtype} on {runner.device}"
        + (f", cuDNN attention {torch.backends.cuda.cudnn_sdp_enabled()}" if cuda else "")
    )
    for name, s in (
        ("tokenize all", tokenize_s),
        ("tensors, every batch", tensors_s),
        ("model forward (synchronized)", forward_s),
        ("pooling + copy to host (estimate)", pool_s),
        ("EmbedRunner.run, whole", run_s),
    ):
        log(f"{name:<36} {s:8.3f} s  {n / s:12,.0f} items/s")
    profile = cProfile.Profile()
    profile.enable()
    runner.run(texts, params)
    sync()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
