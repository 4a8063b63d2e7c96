"""Image classification throughput: sluice end to end against the in-process loop (the same
runner, model and threads) and against transformers' image-classification pipeline at
batch_size 1 and 64, all measured in one run; with the decode/compute overlap shown by
timestamps, and channels_last against the default layout.

    python bench/images.py                       # small CNN at 64 px and ResNet-50 at 224 px
    python bench/images.py --models small --images 2000 --json /tmp/images.json

Models, random-weight and seeded (nothing is downloaded): `small`, a two-stage ResNet
(transformers) at 64 px; `resnet50`, transformers' default ResNetConfig (ResNet-50's
shape) at 224 px; `net`, the CIFAR-10 tutorial's CNN saved with torch.export, at 32 px
(no pipeline for a program). Inputs are drawn shapes of 48 to 320 px, half PNG and half
JPEG, sent as data URLs; everyone decodes them (the pipeline gets the same base64).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/images.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - needs the root on sys.path
    Measurement,
    finish,
    log,
    machine_info,
    ratio,
    read_results,
    sluice_stack,
    use_threads,
)

IMAGES_DEFAULT = {"small": 3000, "resnet50": 192, "net": 20000}
BATCH_IMAGES = {"small": 64, "resnet50": 16, "net": 256}


def build_model(kind: str, root: Path) -> str:
    """A seeded model of a kind under root; its models.yaml entry's text."""
    import torch

    torch.manual_seed(0)
    if kind == "net":
        from tests.tiny_images import CIFAR_LABELS, CIFAR_MEAN, CIFAR_STD, build_tiny_cnn

        exported, _ = build_tiny_cnn(root / "net")
        return (
            f"  net:\n    task: classify_image\n    source: {exported}\n"
            f"    max_batch_images: {BATCH_IMAGES[kind]}\n    chunk_size: 512\n"
            f"    image:\n      size: [32, 32]\n      mean: {list(CIFAR_MEAN)}\n"
            f"      std: {list(CIFAR_STD)}\n    labels: {CIFAR_LABELS}\n"
        )
    from transformers import ConvNextImageProcessorPil, ResNetConfig, ResNetForImageClassification

    labels = [f"class_{i}" for i in range(100)]
    shape: dict[str, Any] = (
        {"embedding_size": 32, "hidden_sizes": [32, 64], "depths": [1, 1], "layer_type": "basic"}
        if kind == "small"
        else {}
    )
    config = ResNetConfig(
        **shape,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    path = root / kind
    ResNetForImageClassification(config).eval().save_pretrained(path)
    side = 64 if kind == "small" else 224
    ConvNextImageProcessorPil(size={"shortest_edge": side}, crop_pct=0.875).save_pretrained(path)
    return (
        f"  {kind}:\n    task: classify_image\n    source: {path}\n    dtype: float32\n"
        f"    max_batch_images: {BATCH_IMAGES[kind]}\n    chunk_size: 64\n"
    )


def drawn_images(n: int, seed: int) -> list[dict[str, str]]:
    """n items of drawn shapes, 48 to 320 px a side, half PNG and half JPEG."""
    from cli.demo_images import SHAPES, draw_shape
    from core.contracts.images import data_url

    rng = random.Random(seed)
    items = []
    for i in range(n):
        side = rng.randint(48, 320)
        image = draw_shape(rng, SHAPES[i % len(SHAPES)], side)
        buffer = io.BytesIO()
        fmt = "PNG" if i % 2 else "JPEG"
        image.save(buffer, fmt)
        items.append({"custom_id": f"img-{i}", "input": data_url(buffer.getvalue(), fmt.lower())})
    return items


def timeline(runner: Any, values: list[str], params: Any) -> dict[str, Any]:
    """Run once with prepare (decode + preprocess) and forward timed: how much of the
    decoding ran while the model computed, and the first micro-batches' intervals."""
    spans: list[tuple[str, int, float, float]] = []
    lock = threading.Lock()
    prepare, forward = runner.prepare, runner.forward

    def timed(kind: str, fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                with lock:
                    spans.append((kind, threading.get_ident(), started, time.perf_counter()))

        return wrapper

    runner.prepare, runner.forward = timed("decode", prepare), timed("compute", forward)
    try:
        origin = time.perf_counter()
        runner.run(values, params)
    finally:
        runner.prepare, runner.forward = prepare, forward
    decode = [(a, b) for kind, _, a, b in spans if kind == "decode"]
    compute = [(a, b) for kind, _, a, b in spans if kind == "compute"]
    hidden = sum(
        max(0.0, min(b, d) - max(a, c)) for a, b in decode for c, d in compute
    )  # decode time that ran during some compute
    total_decode = sum(b - a for a, b in decode)
    first = sorted((a, kind, b) for kind, _, a, b in spans)[:6]
    return {
        "decode_seconds": round(total_decode, 3),
        "compute_seconds": round(sum(b - a for a, b in compute), 3),
        "decode_hidden_share": round(hidden / total_decode, 3) if total_decode else None,
        "first_spans_ms": [
            f"{kind} {1000 * (a - origin):.0f}-{1000 * (b - origin):.0f}" for a, kind, b in first
        ],
    }


def in_process(runner: Any, values: list[str], params: Any) -> tuple[float, list[Any]]:
    """Seconds for the runner over every image at once, and its outputs."""
    started = time.perf_counter()
    results = runner.run(values, params)
    seconds = time.perf_counter() - started
    failed = sum(not r.ok for r in results)
    if failed:
        raise RuntimeError(f"{failed} images failed in-process")
    return seconds, [r.output for r in results]


def pipeline_seconds(path: str, values: list[str], batch_size: int) -> float:
    """Seconds for transformers' image-classification pipeline over the same base64."""
    from tests.tiny_images import reference_pipeline

    pipe = reference_pipeline(path)
    bare = [v.split(",", 1)[1] for v in values]
    pipe(bare[: min(8, len(bare))], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    pipe(bare, batch_size=batch_size)
    return time.perf_counter() - started


def timed_file_job(
    stack: Any, model: str, items: list[dict[str, str]], timeout: float, problems: list[str]
) -> tuple[dict[str, Any], float, float]:
    """A small inline warm-up job, then the timed one as images are sent in bulk: a JSONL
    upload (streamed) made a job, from the first byte sent to completed. (job, seconds,
    seconds the upload took)."""
    client = stack.client
    warm = client.submit(model=model, inputs=items[:64], params={"top_k": 1})
    if finish(client, warm, timeout)["status"] != "completed":
        raise RuntimeError(f"warm-up job {warm['id']} did not complete")
    log(f"uploading {len(items):,} images as a file and making a job of it")
    started = time.perf_counter()
    lines = (orjson.dumps(item) + b"\n" for item in items)
    uploaded = client.upload_lines(lines, filename="images.jsonl")
    submitted = time.perf_counter() - started
    job = client.submit_file(model=model, input_file_id=uploaded["id"], params={"top_k": 1})
    job = finish(client, job, timeout)
    seconds = time.perf_counter() - started
    if job["status"] != "completed" or job["counts"]["failed"]:
        problems.append(f"job {job['id']} ended {job['status']}, {job['counts']}")
    log(f"job {job['id']} {job['status']} in {seconds:.1f}s (upload {submitted:.1f}s)")
    return job, seconds, submitted


def bench_model(kind: str, args: argparse.Namespace, threads: int, workdir: Path) -> dict:
    """Every measurement of one model, one after another."""
    from core.contracts.images import ImageLimits
    from core.contracts.params import parse_params
    from core.contracts.spec import parse_registry
    from models.classify_image import ClassifyImageRunner

    n = args.images or IMAGES_DEFAULT[kind]
    models_file = workdir / f"{kind}.yaml"
    models_file.write_text("models:\n" + build_model(kind, workdir))
    spec = parse_registry(models_file.read_text())[kind]
    items = drawn_images(n, seed=1)
    values = [item["input"] for item in items]
    params = parse_params("classify_image", {"top_k": 1})
    limits = ImageLimits(8 << 20, 40_000_000)
    figures: dict[str, Any] = {"model": kind, "images": n}
    measured: dict[str, Measurement] = {}
    # Both memory layouts in-process; the faster is the one sluice's worker is given (its
    # own choice, channels_last auto, times a probe batch and could differ on a busy CPU).
    runs: dict[bool, tuple[float, list[Any]]] = {}
    for layout in (False, True):
        log(f"{kind}: in-process loop over {n:,} images, channels_last {layout}")
        runner = ClassifyImageRunner(
            spec.model_copy(update={"channels_last": layout}), limits=limits
        )
        runner.run(values[:64], params)  # warm-up
        runs[layout] = in_process(runner, values, params)
        if layout:
            figures["overlap"] = timeline(runner, values[: min(n, 8 * BATCH_IMAGES[kind])], params)
        del runner
    layout = runs[True][0] < runs[False][0]
    seconds, reference = runs[layout]
    measured["in-process"] = Measurement("in-process", n, seconds, {"channels_last": layout})
    measured["channels_last"] = Measurement("channels_last", n, runs[True][0])
    measured["contiguous"] = Measurement("contiguous", n, runs[False][0])
    models_file.write_text(
        models_file.read_text() + f"    channels_last: {'true' if layout else 'false'}\n"
    )
    log(f"{kind}: sluice end to end")
    (workdir / f"stack-{kind}").mkdir()
    with sluice_stack(
        model=kind,
        models_file=models_file,
        threads=threads,
        max_inputs=n,
        workdir=workdir / f"stack-{kind}",
        database_url=args.database_url,
    ) as stack:
        problems: list[str] = []
        job, seconds, submitted = timed_file_job(stack, kind, items, args.timeout, problems)
        measured["sluice"] = Measurement("sluice", n, seconds, {"upload_seconds": submitted})

        def check(index: int, row: dict[str, Any]) -> None:
            ours, theirs = row["output"][0], reference[index][0]
            if ours["label"] != theirs["label"] or abs(ours["score"] - theirs["score"]) > 1e-3:
                problems.append(f"image {index}: {ours} in sluice, {theirs} in-process")

        read_results(stack, job["id"], items, check, problems)
        if problems:
            raise RuntimeError(f"{kind}: {problems[:5]}")
    if kind != "net" and not args.skip_pipeline:
        for batch_size in (1, 64):
            log(f"{kind}: pipeline, batch_size {batch_size}")
            seconds = pipeline_seconds(spec.resolved_source(), values, batch_size)
            measured[f"pipeline bs{batch_size}"] = Measurement(
                f"pipeline bs{batch_size}", n, seconds
            )
    figures["images_per_s"] = {k: round(m.items_per_s, 1) for k, m in measured.items()}
    figures["ratios"] = {
        "sluice / in-process": ratio(measured["sluice"], measured["in-process"]),
        "sluice / pipeline bs64": ratio(measured["sluice"], measured.get("pipeline bs64")),
        "sluice / pipeline bs1": ratio(measured["sluice"], measured.get("pipeline bs1")),
        "channels_last / contiguous (in-process)": ratio(
            measured["channels_last"], measured["contiguous"]
        ),
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure each model; print the figures and ratios (and write JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="small,resnet50,net", help="small, resnet50, net")
    p.add_argument("--images", type=int, default=None, help="images per model")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--skip-pipeline", action="store_true", help="leave out the pipeline")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    threads = use_threads(args.threads)
    report: dict[str, Any] = {"machine": machine_info(threads), "models": []}
    with tempfile.TemporaryDirectory(prefix="sluicebench-img-") as tmp:
        for kind in args.models.split(","):
            report["models"].append(bench_model(kind.strip(), args, threads, Path(tmp)))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    failed = False
    for figures in report["models"]:
        for name, value in figures["ratios"].items():
            if value is not None:
                print(f"{figures['model']:>9}  {name:<38} {value:6.3f}")
        e2e = figures["ratios"]["sluice / in-process"]
        failed |= e2e is not None and e2e < 0.9
    print("targets: sluice / in-process >= 0.9; sluice / pipeline bs64 >= 2")
    if args.json:
        args.json.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
