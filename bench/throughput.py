"""Embedding throughput of sluice end to end beside the in-process optimum and
sentence-transformers, all measured in one run on the same model and thread count.

    python bench/throughput.py                 # 20,000 items, SQLite, local Redis
    python bench/throughput.py --items 600 --json /tmp/bench.json
    python bench/throughput.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

In order: sluice's length-sorted token-budget loop in-process at fp32, bf16 and (unless
--skip-int8) int8, plus the dtype sluice's registry entry resolves to if it is none of those;
sentence-transformers encode(batch_size=32) at fp32 (unless --skip-st); then one job through
the API and one worker, with the registry entry as shipped. The in-process optimum is the
faster of the fp32 and bf16 loops. The measurements run one after another, never side by
side, each model freed before the next loads: each one gets every core.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/throughput.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 - needs the root on sys.path
    Measurement,
    log,
    machine_info,
    ratio,
    read_results,
    sluice_stack,
    timed_job,
    use_threads,
)

T = TypeVar("T")
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "bench-data"
CORPORA = ("wordnet.jsonl.gz", "fortunes.jsonl.gz")


def load_mix(data_dir: Path, n: int, seed: int) -> list[dict[str, str]]:
    """N inputs, half from each corpus, sampled and shuffled with one seeded generator. Past
    a corpus's size it is drawn again (texts repeat; a repeat's custom_id gets #round)."""
    rng = random.Random(seed)
    counts = (n // 2, n - n // 2)
    items: list[dict[str, str]] = []
    for name, k in zip(CORPORA, counts, strict=True):
        with gzip.open(data_dir / name, "rb") as fh:
            rows = [orjson.loads(line) for line in fh if line.strip()]
        if k > len(rows):
            log(f"{name} has {len(rows):,} lines: {k:,} drawn, some texts repeat")
        for round_ in range(-(-k // len(rows))):
            picked = rng.sample(rows, min(k - round_ * len(rows), len(rows)))
            suffix = f"#{round_}" if round_ else ""
            items += [{"custom_id": r["id"] + suffix, "input": r["text"]} for r in picked]
    rng.shuffle(items)
    return items


# What each in-process loop changes in the registry entry.
VARIANTS: dict[str, dict[str, str]] = {
    "fp32": {"dtype": "float32", "quantize": "none"},
    "bf16": {"dtype": "bfloat16", "quantize": "none"},
    "fp16": {"dtype": "float16", "quantize": "none"},
    "int8": {"dtype": "float32", "quantize": "int8"},
}
DTYPE_LABELS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
# The loops the in-process optimum is the fastest of: on a GPU fp16 as well.
OPTIMUM_CANDIDATES = ("fp32", "bf16")
GPU_OPTIMUM_CANDIDATES = ("fp32", "bf16", "fp16")
# sluice's vectors against the in-process loop of the same dtype: the smallest cosine that
# still counts as the same computation (batch composition differs between the two). int8's
# dynamic quantisation scales activations per micro-batch, so it has no bar: reported only.
# fp32's bar is tight enough that a bf16 run (min cosine to fp32 about 0.9999) fails it.
SAME_DTYPE_MIN_COSINE = {"fp32": 0.99999, "bf16": 0.999, "fp16": 0.999}
TARGETS = {
    "sluice / in-process optimum": 0.9,
    "sluice / sentence-transformers": 3.0,
    "padding efficiency, sluice's plan": 0.95,
    # issue 3, item 5: reduced precision keeps every item's cosine to fp32 >= 0.999
    "min cosine, bf16 vs fp32": 0.999,
}


def _dtype_label(dtype: Any) -> str:
    """fp32, bf16 or fp16 for a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    return DTYPE_LABELS.get(name, name)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally shaped matrices, over rows finite in both."""
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
    dots = (a * b).sum(1)
    return dots / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Minimum and mean row-wise cosine (NaN where no row is comparable)."""
    cos = _cosines(a, b)
    if not len(cos):
        return {"min": float("nan"), "mean": float("nan"), "rows": 0}
    return {"min": float(cos.min()), "mean": float(cos.mean()), "rows": len(cos)}


def plan_figures(runner: Any, spec: Any, texts: list[str]) -> dict[str, Any]:
    """Padding efficiency (real / padded tokens) of three plans over the same token lengths:
    the planner on all items at once, sluice's actual plan, and sentence-transformers'."""
    from core.chunking import bucket_chunks
    from core.config import Settings
    from core.contracts.token_counts import counter_for
    from models.planner import padding_efficiency

    lengths = [len(e["input_ids"]) for e in runner.tokenize(texts, truncate=True)[0]]
    budget = spec.batch_tokens(runner.device.type)
    whole = padding_efficiency(lengths, runner.plan(lengths))
    # sluice sorts windows of the job by token count (the API's counter_for), cuts them into
    # chunks, and plans each chunk on its own: the same functions, the same settings.
    window = Settings().bucket_window_items
    counter = counter_for(spec)
    sort_keys = counter(texts) if counter else [len(t) for t in texts]
    plan = bucket_chunks(texts, sort_keys, chunk_size=spec.chunk_size, window=window)
    per_chunk_real = per_chunk_padded = 0.0
    for _, piece in plan:
        sub = [lengths[i] for i in piece]
        eff = padding_efficiency(sub, runner.plan(sub))
        per_chunk_real += sum(sub)
        per_chunk_padded += sum(sub) / eff
    # sentence-transformers sorts by character length, then takes batches of 32.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    st_plan = [order[i : i + 32] for i in range(0, len(order), 32)]
    return {
        "max_length": runner.max_length,
        "max_batch_tokens": budget,
        "chunk_size": spec.chunk_size,
        "bucket_window_items": window,
        "padding_efficiency": whole,
        "padding_efficiency_per_chunk": per_chunk_real / per_chunk_padded,
        "padding_efficiency_st": padding_efficiency(lengths, st_plan),
        "mean_tokens": sum(lengths) / len(lengths),
    }


def median_run(run: Callable[[], T], repeat: int) -> tuple[T, float, list[float]]:
    """Time run() `repeat` times: the last result, the median seconds, and every run's."""
    runs: list[float] = []
    result: T
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        runs.append(time.perf_counter() - started)
    return result, statistics.median(runs), runs


def warmed_runner(spec: Any, texts: list[str], warmup: int) -> tuple[Any, Any]:
    """An EmbedRunner of the spec, warmed on the first `warmup` texts, and default params."""
    from core.contracts.params import EmbedParams
    from models.embed import EmbedRunner

    runner, params = EmbedRunner(spec), EmbedParams()
    runner.run(texts[:warmup], params)
    return runner, params


def bench_loop(
    spec: Any,
    variant: str,
    texts: list[str],
    warmup: int,
    with_plan: bool = False,
    repeat: int = 1,
) -> tuple[Measurement, np.ndarray]:
    """sluice's own runner in-process on all texts at once (the length-sorted token-budget
    loop), with the registry entry changed to one variant (fp32, bf16, fp16 or int8); the
    median of `repeat` timed runs."""
    variant_spec = spec.model_copy(update=VARIANTS[variant])
    runner, params = warmed_runner(variant_spec, texts, warmup)
    results, seconds, runs = median_run(partial(runner.run, texts, params), repeat)
    failed = sum(not r.ok for r in results)
    vectors = np.stack(
        [
            np.asarray(r.output, dtype=np.float32)
            if r.ok
            else np.full(runner.dimension, np.nan, dtype=np.float32)
            for r in results
        ]
    )
    extra: dict[str, Any] = {
        "variant": variant,
        "failed": failed,
        "dtype": "int8" if variant_spec.quantize == "int8" else _dtype_label(runner.dtype),
        "quantize": variant_spec.quantize,
        "device": str(runner.device),
        "max_length": runner.max_length,
        "runs_seconds": runs,
    }
    if with_plan:
        extra["plan"] = plan_figures(runner, spec, texts)
    del runner, results
    gc.collect()
    return Measurement(f"in-process loop, {variant}", len(texts), seconds, extra), vectors


def paired_loop(spec: Any, variant: str, texts: list[str], warmup: int) -> Callable[[], float]:
    """A loaded, warmed in-process loop of one variant: each call times one run over all
    texts (seconds). Run right before each sluice job, it pairs the two measurements in
    time, so the machine's drift over the minutes a bench takes falls on both alike."""
    runner, params = warmed_runner(spec.model_copy(update=VARIANTS[variant]), texts, warmup)
    return lambda: median_run(partial(runner.run, texts, params), 1)[1]


def bench_st(
    spec: Any,
    texts: list[str],
    warmup: int,
    device: str,
    max_length: int,
    fp32: np.ndarray,
    repeat: int = 1,
) -> Measurement:
    """sentence-transformers' encode(batch_size=32) at its default fp32, on the same model and
    threads (the median of `repeat` runs); its vectors are compared with the in-process fp32
    loop's."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(spec.resolved_source(), device=device)
    model.max_seq_length = max_length
    model.encode(texts[:warmup], batch_size=32)
    vectors, seconds, runs = median_run(
        partial(model.encode, texts, batch_size=32, convert_to_numpy=True), repeat
    )
    cosine = _cosine_stats(np.asarray(vectors, np.float32), fp32)
    extra = {"dtype": "fp32", "cosine_to_fp32": cosine, "runs_seconds": runs}
    del model, vectors
    gc.collect()
    return Measurement("sentence-transformers encode(32)", len(texts), seconds, extra)


def bench_sluice(
    args: argparse.Namespace,
    items: list[dict[str, str]],
    threads: int,
    dimension: int,
    models_text: str,
    workdir: Path,
    paired: Callable[[], float] | None = None,
) -> tuple[Measurement, Measurement, list[str], np.ndarray]:
    """One job through API, Redis and one worker (`--rounds` jobs one after another on the
    same stack: the median), then a timed download of the last job's results. Returns its
    vectors in input order (NaN rows where an item has none) for the caller to compare.

    The API and worker read `models_text`, the registry as the bench read it when it started,
    so an edit to models.yaml during the run cannot make them serve another dtype."""
    models_file = workdir / "models.yaml"
    models_file.write_text(models_text)
    problems: list[str] = []
    got = np.full((len(items), dimension), np.nan, dtype=np.float32)

    def keep(index: int, row: dict[str, Any]) -> None:
        got[index] = row["output"]

    with sluice_stack(
        model=args.model,
        models_file=models_file,
        threads=threads,
        max_inputs=len(items),
        workdir=workdir,
        logs=args.logs,
        database_url=args.database_url,
        gpus=args.gpus,
    ) as stack:
        runs: list[float] = []
        paired_runs: list[float] = []
        for n in range(args.rounds):
            if paired is not None:
                paired_runs.append(paired())
            job, took, submitted = timed_job(
                stack,
                model=args.model,
                items=items,
                params=None,
                warmup=args.warmup if n == 0 else 0,
                timeout=args.timeout,
                problems=problems,
            )
            runs.append(took)
        seconds = statistics.median(runs)
        download = read_results(stack, job["id"], items, keep, problems)
        database = stack.db_url.split("://")[0]
    e2e = Measurement(
        "sluice (API + 1 worker)",
        len(items),
        seconds,
        {
            "job_id": job["id"],
            "status": job["status"],
            "submit_seconds": submitted,
            "runs_seconds": runs,
            "paired_in_process_seconds": paired_runs,
            "api_throughput": job.get("throughput"),
            "database": database,
        },
    )
    return e2e, download, problems, got


def machine_info_with_st(threads: int) -> dict[str, Any]:
    """The machine, and the sentence-transformers version compared against."""
    info = machine_info(threads)
    try:
        import sentence_transformers

        info["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        info["sentence_transformers"] = None
    return info


def _verdict(value: float | None, target: float | None) -> str:
    """pass / MISS beside a figure that has a target; blank otherwise."""
    if target is None or value is None:
        return ""
    return "[green]pass[/]" if value >= target else "[red]MISS[/]"


def report(figures: dict[str, Any], rows: list[Measurement], problems: list[str]) -> None:
    """Print the tables, the ratios against their targets and the machine to stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=110)  # no wrapped table cells in a log or a pipe
    optimum = figures["in_process_optimum"]
    table = Table(title=f"embedding throughput, {figures['items']:,} items, {figures['model']}")
    table.add_column("measurement")
    table.add_column("dtype")
    table.add_column("items", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("items/s", justify="right")
    for m in rows:
        unit = "lines/s" if m.name == "results download" else ""
        name = f"{m.name} (optimum)" if m.extra.get("variant") == optimum else m.name
        table.add_row(
            name,
            m.extra.get("dtype", ""),
            f"{m.items:,}",
            f"{m.seconds:.2f}",
            f"{m.items_per_s:,.1f} {unit}".strip(),
        )
    console.print(table)

    targets = {t["figure"]: t["target"] for t in figures["targets"]}
    ratios = Table(title="ratios and targets")
    ratios.add_column("figure")
    ratios.add_column("value", justify="right")
    ratios.add_column("target", justify="right")
    ratios.add_column("")
    for name, value in figures["ratios"].items():
        target = targets.get(name)
        ratios.add_row(
            name,
            "n/a" if value is None else f"{value:.3f}",
            "" if target is None else f">= {target:g}",
            _verdict(value, target),
        )
    for name, value in figures["padding_efficiency"].items():
        target = targets.get(f"padding efficiency, {name}")
        ratios.add_row(
            f"padding efficiency, {name}",
            f"{value:.1%}",
            "" if target is None else f">= {target:.0%}",
            _verdict(value, target),
        )
    console.print(ratios)

    fidelity = Table(title="fidelity: row-wise cosine of the vectors")
    fidelity.add_column("comparison")
    fidelity.add_column("min", justify="right")
    fidelity.add_column("mean", justify="right")
    fidelity.add_column("target (min)", justify="right")
    fidelity.add_column("")
    for name, stats in figures["fidelity"].items():
        if stats is None:
            fidelity.add_row(name, "n/a", "n/a", "", "")
            continue
        target = targets.get(f"min cosine, {name}") or stats.get("bar")
        fidelity.add_row(
            name,
            f"{stats['min']:.6f}",
            f"{stats['mean']:.6f}",
            "" if target is None else f">= {target:g}",
            _verdict(stats["min"], target),
        )
    console.print(fidelity)

    def say(text: str) -> None:
        console.print(text, soft_wrap=True)  # long lines stay whole in a log

    sluice, m = figures["sluice"], figures["machine"]
    say(
        f"sluice worker dtype: {sluice['dtype']} (models.yaml dtype {sluice['registry_dtype']!r}, "
        f"quantize {sluice['quantize']!r}, resolved by pick_dtype on {m['device']}); "
        f"in-process optimum: the {optimum} loop"
    )
    say(
        f"machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
        f"{m['device']}; python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, sentence-transformers {m['sentence_transformers']}; "
        f"database {sluice['database']}, seed {figures['seed']}"
    )
    if problems:
        say("[red]sluice result check FAILED:[/] " + "; ".join(problems))
    else:
        say(
            "sluice results verified: every index once, custom ids match, no errors, vectors "
            f"match the in-process {sluice['dtype']} loop (and are nearest it)"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20_000, help="inputs, half from each corpus")
    p.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed")
    p.add_argument("--model", default="all-minilm-l6-v2", help="an embed model from models.yaml")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the corpora")
    p.add_argument(
        "--warmup",
        type=int,
        default=512,
        help="items run before timing (in-process, and sluice's warm-up job, whose chunk "
        "also gives the API its first measure of the model's speed for sizing chunks)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="timed runs of each measurement: the median"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="paired rounds (an in-process optimum run, then a sluice job): the median "
        "(default: --repeat)",
    )
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: temp SQLite)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds the job may take")
    p.add_argument("--logs", type=Path, default=None, help="keep API and worker logs here")
    p.add_argument("--skip-st", action="store_true", help="leave out sentence-transformers")
    p.add_argument("--skip-int8", action="store_true", help="leave out the int8 loop")
    p.add_argument(
        "--gpus",
        default=None,
        help="start the worker as `sluice workers --gpus GPUS` (one pinned worker per GPU)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.items < 2:
        p.error("--items must be at least 2")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.rounds = args.repeat if args.rounds is None else args.rounds
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the measurements one after another and report them as ratios."""
    args = parse_args(argv)

    from core.config import Settings
    from core.contracts.spec import DEFAULT_MODELS_FILE, parse_registry
    from models.device import pick_device, pick_dtype

    threads = use_threads(args.threads)
    # The file the API and worker would read; they get this very text (see bench_sluice).
    models_path = Settings().models_file or DEFAULT_MODELS_FILE
    models_text = Path(models_path).read_text()
    registry = parse_registry(models_text, origin=str(models_path))
    if args.model not in registry:
        raise SystemExit(f"unknown model {args.model!r}; registered: {sorted(registry)}")
    spec = registry[args.model]
    if spec.task != "embed":
        raise SystemExit(f"{args.model} is a {spec.task} model; this benchmark embeds")
    # What the worker runs: the registry entry as shipped, its dtype resolved the same way.
    device = pick_device()
    sluice_dtype = _dtype_label(pick_dtype(spec.dtype, device))
    sluice_variant = "int8" if spec.quantize == "int8" else sluice_dtype
    items = load_mix(args.data_dir, args.items, args.seed)
    texts = [x["input"] for x in items]
    log(f"{len(items):,} items (seed {args.seed}), {threads} torch threads")
    log(f"sluice will run {args.model} as {sluice_variant} (models.yaml dtype {spec.dtype!r})")

    # One at a time, each model freed before the next loads: every measurement gets every core.
    on_gpu = device.type == "cuda"
    candidates = GPU_OPTIMUM_CANDIDATES if on_gpu else OPTIMUM_CANDIDATES
    # int8 is CPU-only dynamic quantisation: there is nothing to measure on a GPU.
    variants = [*candidates, *([] if args.skip_int8 or on_gpu else ["int8"])]
    if sluice_variant not in variants:
        variants.append(sluice_variant)  # sluice's results are checked against their own dtype
    loops: dict[str, Measurement] = {}
    vectors: dict[str, np.ndarray] = {}
    for variant in variants:
        log(f"in-process loop, {variant} (EmbedRunner.run on everything at once)")
        loops[variant], vectors[variant] = bench_loop(
            spec, variant, texts, args.warmup, with_plan=variant == "fp32", repeat=args.repeat
        )
        got_dtype = loops[variant].extra["dtype"]
        if variant != "int8" and got_dtype != variant:
            log(f"warning: the {variant} loop ran in {got_dtype} on this device")
        if loops[variant].extra["failed"]:
            log(f"warning: {loops[variant].extra['failed']} items failed in the {variant} loop")
    fp32 = loops["fp32"]
    plan = fp32.extra["plan"]
    optimum = max((loops[v] for v in candidates), key=lambda m: m.items_per_s)
    st: Measurement | None = None
    if not args.skip_st:
        log("sentence-transformers encode(batch_size=32)")
        st = bench_st(
            spec,
            texts,
            args.warmup,
            fp32.extra["device"],
            plan["max_length"],
            vectors["fp32"],
            repeat=args.repeat,
        )
    gc.collect()  # nothing of the in-process models may compete with the worker
    # The optimum's loop, loaded again, runs right before each sluice job (it and the
    # worker never compute at the same time).
    paired = paired_loop(spec, optimum.extra["variant"], texts, args.warmup)
    log(f"sluice end to end, each job after an in-process {optimum.extra['variant']} run")
    with tempfile.TemporaryDirectory(prefix="sluicebench-") as tmp:
        e2e, download, problems, got = bench_sluice(
            args, items, threads, vectors["fp32"].shape[1], models_text, Path(tmp), paired
        )
    del paired
    gc.collect()
    pairs = list(
        zip(e2e.extra["paired_in_process_seconds"], e2e.extra["runs_seconds"], strict=True)
    )
    paired_ratio = statistics.median([inproc / job for inproc, job in pairs])
    paired_optimum = Measurement(
        f"in-process loop, {optimum.extra['variant']}, paired with sluice",
        len(texts),
        statistics.median([inproc for inproc, _ in pairs]),
        {"dtype": optimum.extra["dtype"], "runs_seconds": [i for i, _ in pairs]},
    )
    e2e.extra.update(
        dtype=sluice_variant,
        registry_dtype=spec.dtype,
        quantize=spec.quantize,
        variant=f"sluice:{sluice_variant}",
        models_file=str(models_path),
    )

    # Verification: sluice's vectors against the in-process loop of the dtype it ran.
    same = _cosine_stats(got, vectors[sluice_variant])
    bar = SAME_DTYPE_MIN_COSINE.get(sluice_variant)
    if bar is not None and not same["min"] >= bar:
        problems.append(
            f"min cosine to the in-process {sluice_variant} loop is {same['min']:.6f} (< {bar})"
        )
    # ...and it must be nearer that loop than any other: a worker that ran another dtype
    # than the one computed here shows up as nearer that dtype's loop.
    nearest = max(vectors, key=lambda v: _cosine_stats(got, vectors[v])["mean"])
    e2e.extra["nearest_in_process_loop"] = nearest
    if nearest != sluice_variant:
        problems.append(
            f"sluice's vectors are nearer the in-process {nearest} loop than the "
            f"{sluice_variant} loop it should equal"
        )
    fidelity: dict[str, dict[str, Any] | None] = {
        "bf16 vs fp32": _cosine_stats(vectors["bf16"], vectors["fp32"]),
        **({"fp16 vs fp32": _cosine_stats(vectors["fp16"], vectors["fp32"])} if on_gpu else {}),
        "int8 vs fp32": (
            _cosine_stats(vectors["int8"], vectors["fp32"]) if "int8" in vectors else None
        ),
        "s-t vs fp32": st.extra["cosine_to_fp32"] if st else None,
        f"sluice vs in-process {sluice_variant} (verification)": {**same, "bar": bar},
        "sluice vs fp32": _cosine_stats(got, vectors["fp32"]),
    }
    ratios = {
        # the median over rounds of (in-process run) / (the sluice job right after it)
        "sluice / in-process optimum": paired_ratio,
        "sluice / in-process optimum, measured apart": ratio(e2e, optimum),
        "sluice / sentence-transformers": ratio(e2e, st),
        "in-process optimum / sentence-transformers": ratio(optimum, st),
        f"sluice / in-process {sluice_variant} loop": ratio(e2e, loops[sluice_variant]),
        "bf16 / fp32 speed (in-process)": ratio(loops["bf16"], fp32),
        **({"fp16 / fp32 speed (in-process)": ratio(loops["fp16"], fp32)} if on_gpu else {}),
        "int8 / fp32 speed (in-process)": ratio(loops.get("int8"), fp32),
    }
    padding = {
        "sluice's plan": plan["padding_efficiency_per_chunk"],
        "planner, all items at once": plan["padding_efficiency"],
        "sorted batches of 32 (s-t)": plan["padding_efficiency_st"],
    }
    values: dict[str, float | None] = {
        **ratios,
        **{f"padding efficiency, {k}": v for k, v in padding.items()},
        **{f"min cosine, {k}": v["min"] for k, v in fidelity.items() if v},
    }
    rows = [m for m in (e2e, paired_optimum, *loops.values(), st, download) if m is not None]
    figures: dict[str, Any] = {
        "items": len(items),
        "seed": args.seed,
        "model": args.model,
        "in_process_optimum": optimum.extra["variant"],
        "items_per_s": {
            "sluice": e2e.items_per_s,
            "in_process_optimum": optimum.items_per_s,
            "in_process_optimum_paired": paired_optimum.items_per_s,
            **{f"in_process_{v}": m.items_per_s for v, m in loops.items()},
            "sentence_transformers": st.items_per_s if st else None,
        },
        "seconds": {m.name: m.seconds for m in rows},
        "results_download_lines_per_s": download.items_per_s,
        "results_download_mbytes": download.extra["mbytes"],
        "ratios": ratios,
        "padding_efficiency": padding,
        "fidelity": fidelity,
        "targets": [
            {
                "figure": name,
                "value": values.get(name),
                "target": target,
                "met": None if values.get(name) is None else values[name] >= target,
            }
            for name, target in TARGETS.items()
        ],
        "sluice": e2e.extra,
        "in_process": {v: m.extra for v, m in loops.items()},
        "plan": plan,
        "machine": {**machine_info_with_st(threads), "device": fp32.extra["device"]},
        "problems": problems,
    }
    report(figures, rows, problems)
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        log(f"figures written to {args.json}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
