"""Embedding throughput of sluice end to end beside the in-process optimum and
sentence-transformers, all measured in one run on the same model and thread count.

    python bench/throughput.py                 # 20,000 items, SQLite, local Redis
    python bench/throughput.py --items 600 --json /tmp/bench.json
    python bench/throughput.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The three measurements run one after another, never side by side: each one gets every core.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "bench-data"
CORPORA = ("wordnet.jsonl.gz", "fortunes.jsonl.gz")


def log(message: str) -> None:
    """Progress to stderr, so stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Measurement:
    """One throughput figure: how many items took how long, plus notes for the report."""

    name: str
    items: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds > 0 else float("nan")


def load_mix(data_dir: Path, n: int, seed: int) -> list[dict[str, str]]:
    """N inputs, half from each corpus, sampled and shuffled with one seeded generator."""
    rng = random.Random(seed)
    counts = (n // 2, n - n // 2)
    items: list[dict[str, str]] = []
    for name, k in zip(CORPORA, counts, strict=True):
        with gzip.open(data_dir / name, "rb") as fh:
            rows = [orjson.loads(line) for line in fh if line.strip()]
        if k > len(rows):
            raise SystemExit(f"{name} has {len(rows)} lines; {k} asked for")
        items += [{"custom_id": r["id"], "input": r["text"]} for r in rng.sample(rows, k)]
    rng.shuffle(items)
    return items


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine similarity between two equally shaped matrices."""
    dots = (a * b).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((dots / np.maximum(norms, 1e-12)).min())


def bench_optimum(spec: Any, texts: list[str], warmup: int) -> tuple[Measurement, np.ndarray]:
    """sluice's own runner in-process on all texts at once: the length-sorted token-budget loop."""
    from models.embed import EmbedRunner
    from models.params import EmbedParams
    from models.planner import padding_efficiency, plan_batches

    runner = EmbedRunner(spec)
    params = EmbedParams()
    runner.run(texts[:warmup], params)
    started = time.perf_counter()
    results = runner.run(texts, params)
    seconds = time.perf_counter() - started
    failed = sum(not r.ok for r in results)
    vectors = np.stack(
        [
            np.asarray(r.output, dtype=np.float32)
            if r.ok
            else np.full(runner.dimension, np.nan, dtype=np.float32)
            for r in results
        ]
    )
    lengths = [len(e["input_ids"]) for e in runner.tokenize(texts, truncate=True)[0]]
    budget = spec.max_batch_tokens
    whole = padding_efficiency(lengths, plan_batches(lengths, budget))
    # sluice sorts windows of the job by character length, cuts them into chunks, and plans
    # each chunk on its own (by token length): the same functions, the same settings.
    from core.chunking import bucket_chunks
    from core.config import Settings

    window = Settings().bucket_window_items
    plan = bucket_chunks(texts, [len(t) for t in texts], chunk_size=spec.chunk_size, window=window)
    per_chunk_real = per_chunk_padded = 0.0
    for _, piece in plan:
        sub = [lengths[i] for i in piece]
        eff = padding_efficiency(sub, plan_batches(sub, budget))
        per_chunk_real += sum(sub)
        per_chunk_padded += sum(sub) / eff
    # sentence-transformers sorts by character length, then takes batches of 32.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    st_plan = [order[i : i + 32] for i in range(0, len(order), 32)]
    extra = {
        "failed": failed,
        "dtype": str(runner.dtype).removeprefix("torch."),
        "device": str(runner.device),
        "max_length": runner.max_length,
        "max_batch_tokens": budget,
        "padding_efficiency": whole,
        "padding_efficiency_per_chunk": per_chunk_real / per_chunk_padded,
        "padding_efficiency_st": padding_efficiency(lengths, st_plan),
        "mean_tokens": sum(lengths) / len(lengths),
    }
    del runner, results
    gc.collect()
    return Measurement("in-process optimum", len(texts), seconds, extra), vectors


def bench_st(
    spec: Any, texts: list[str], warmup: int, device: str, max_length: int, ref: np.ndarray
) -> Measurement:
    """sentence-transformers' encode(batch_size=32) on the same model and threads."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(spec.resolved_source(), device=device)
    model.max_seq_length = max_length
    model.encode(texts[:warmup], batch_size=32)
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    extra = {"min_cosine_to_optimum": _min_cosine(np.asarray(vectors, np.float32), ref)}
    del model, vectors
    gc.collect()
    return Measurement("sentence-transformers encode(32)", len(texts), seconds, extra)


def _schema_url(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use one schema."""
    from sqlalchemy.engine import make_url

    u = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return u.render_as_string(hide_password=False)


def _wait_for_worker(client: Any, model: str, worker: Any, timeout: float = 300) -> None:
    """Wait until /v1/models shows a live worker for the model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}")
        live = {m["id"]: m["live_workers"] for m in client.models()["data"]}
        if live.get(model):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no live worker for {model} after {timeout:.0f}s")


def _finish(client: Any, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Long-poll a job until it reaches a terminal status; cancel it after timeout."""
    from core.states import JOB_TERMINAL

    deadline = time.monotonic() + timeout
    while job["status"] not in JOB_TERMINAL:
        if time.monotonic() > deadline:
            client.cancel(job["id"])
            raise TimeoutError(f"job {job['id']} not done after {timeout:.0f}s")
        job = client.job(job["id"], wait=2)
    return job


def _tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for an error report."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def bench_sluice(
    args: argparse.Namespace,
    items: list[dict[str, str]],
    threads: int,
    ref: np.ndarray,
    workdir: Path,
) -> tuple[Measurement, Measurement, list[str]]:
    """One job through API, Redis and one worker; also a timed results download."""
    import redis
    from sqlalchemy import create_engine, text

    from cli.client import Client
    from cli.processes import free_port, spawn, stop, wait_ready
    from core.db import get_engine, migrate, write_session
    from core.store.tenants import create_key

    tag = uuid.uuid4().hex[:12]
    prefix = f"sluicebench:{tag}:"
    redis_url = os.environ.get("SLUICE_REDIS_URL", "redis://127.0.0.1:6379/0")
    base_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    schema = f"sluicebench_{tag}" if base_url.startswith("postgresql") else None
    db_url = _schema_url(base_url, schema) if schema else base_url
    if schema:
        admin = create_engine(base_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": db_url,
        "SLUICE_REDIS_URL": redis_url,
        "SLUICE_REDIS_PREFIX": prefix,
        "SLUICE_API_PORT": str(port),
        "SLUICE_MAX_INPUTS_PER_JOB": str(max(100_000, len(items))),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    logs = args.logs or workdir / "logs"
    procs: list[Any] = []
    problems: list[str] = []
    try:
        migrate(db_url)
        with write_session(db_url) as session:
            _, key = create_key(session=session, tenant_name="bench")
        api = spawn(["api", "--port", str(port)], env=env, log=logs / "api.log")
        procs.append(api)
        worker = spawn(["worker", "--models", args.model], env=env, log=logs / "worker.log")
        procs.append(worker)
        wait_ready(api_url, api)
        client = Client(api_url, key, timeout=600)
        log(f"waiting for the worker to load {args.model}")
        _wait_for_worker(client, args.model, worker)
        # A live heartbeat comes before Celery consumes, and the first forward pass is slow:
        # a small job first, as the in-process baselines get their warm-up.
        warm = client.submit(
            model=args.model, inputs=items[: args.warmup], metadata={"source": "bench-warmup"}
        )
        if _finish(client, warm, args.timeout)["status"] != "completed":
            raise RuntimeError(f"warm-up job {warm['id']} did not complete")
        log(f"submitting {len(items):,} items to {api_url} ({db_url.split('@')[-1]})")
        started = time.perf_counter()
        job = client.submit(model=args.model, inputs=items, metadata={"source": "bench"})
        submitted = time.perf_counter() - started
        job = _finish(client, job, args.timeout)
        seconds = time.perf_counter() - started
        if job["status"] != "completed":
            problems.append(f"job ended {job['status']}")
        if job["counts"]["failed"]:
            problems.append(f"{job['counts']['failed']} items failed")
        log(f"job {job['id']} {job['status']} in {seconds:.1f}s; downloading results")

        n = len(items)
        seen = np.zeros(n, dtype=np.int32)
        got = np.full_like(ref, np.nan)
        lines, nbytes, errors = 0, 0, 0
        dl_started = time.perf_counter()
        for raw in client.results(job["id"]):
            lines += 1
            nbytes += len(raw) + 1
            row = orjson.loads(raw)
            index = row.get("index")
            if not isinstance(index, int) or not 0 <= index < n:
                problems.append(f"result line {lines} has index {index!r}")
                continue
            seen[index] += 1
            if row.get("custom_id") != items[index]["custom_id"]:
                problems.append(f"index {index}: custom_id {row.get('custom_id')!r}")
            if "output" not in row:
                errors += 1
                continue
            got[index] = row["output"]
        download = time.perf_counter() - dl_started
        ok = ~np.isnan(got).any(1)
        worst = _min_cosine(got[ok], ref[ok]) if ok.any() else float("nan")
        if lines != n:
            problems.append(f"{lines} result lines for {n} items")
        if (seen != 1).any():
            missing, doubled = int((seen == 0).sum()), int((seen > 1).sum())
            problems.append(f"{missing} indices missing, {doubled} seen more than once")
        if errors:
            problems.append(f"{errors} result lines are errors")
        e2e = Measurement(
            "sluice (API + 1 worker)",
            n,
            seconds,
            {
                "job_id": job["id"],
                "status": job["status"],
                "submit_seconds": submitted,
                "api_throughput": job.get("throughput"),
                "min_cosine_to_optimum": worst,
                "database": db_url.split("://")[0],
            },
        )
        dl = Measurement("results download", lines, download, {"mbytes": nbytes / 1e6})
        return e2e, dl, problems
    except BaseException:
        for name in ("api.log", "worker.log"):
            log(f"--- tail of {name} ---\n{_tail(logs / name)}")
        raise
    finally:
        for proc in reversed(procs):
            stop(proc)
        get_engine(db_url).dispose()
        try:
            r = redis.Redis.from_url(redis_url)
            for k in r.scan_iter(match=f"{prefix}*", count=1000):
                r.delete(k)
        except redis.RedisError as exc:
            log(f"could not clean Redis keys {prefix}*: {exc}")
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def machine_info(threads: int) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    try:
        import sentence_transformers

        info["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        info["sentence_transformers"] = None
    return info


def _ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    return a.items_per_s / b.items_per_s if a and b else None


def report(figures: dict[str, Any], rows: list[Measurement], problems: list[str]) -> None:
    """Print the table, the ratios and the machine to stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"embedding throughput, {figures['items']:,} items, {figures['model']}")
    table.add_column("measurement")
    table.add_column("items", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("items/s", justify="right")
    for m in rows:
        unit = "lines/s" if m.name == "results download" else ""
        table.add_row(
            m.name, f"{m.items:,}", f"{m.seconds:.2f}", f"{m.items_per_s:,.1f} {unit}".strip()
        )
    console.print(table)
    ratios = Table(title="ratios")
    ratios.add_column("figure")
    ratios.add_column("value", justify="right")
    for name, value in figures["ratios"].items():
        ratios.add_row(name, "n/a" if value is None else f"{value:.3f}")
    for name, value in figures["padding_efficiency"].items():
        ratios.add_row(f"padding efficiency, {name}", f"{value:.1%}")
    for name, value in figures["checks"].items():
        ratios.add_row(name, "n/a" if value is None else f"{value:.6f}")
    console.print(ratios)
    m = figures["machine"]
    console.print(
        f"machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
        f"{m['device']} {m['dtype']}; python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, sentence-transformers {m['sentence_transformers']}; "
        f"database {figures['sluice']['database']}, seed {figures['seed']}"
    )
    if problems:
        console.print("[red]sluice result check FAILED:[/] " + "; ".join(problems))
    else:
        console.print("sluice results verified: every index once, custom ids match, no errors")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20_000, help="inputs, half from each corpus")
    p.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed")
    p.add_argument("--model", default="all-minilm-l6-v2", help="a model name from models.yaml")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the corpora")
    p.add_argument("--warmup", type=int, default=64, help="items run before in-process timing")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: temp SQLite)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds the job may take")
    p.add_argument("--logs", type=Path, default=None, help="keep API and worker logs here")
    p.add_argument("--skip-st", action="store_true", help="leave out sentence-transformers")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.items < 2:
        p.error("--items must be at least 2")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements one after another and report them as ratios."""
    args = parse_args(argv)
    import torch

    from models.spec import load_registry

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    registry = load_registry()
    if args.model not in registry:
        raise SystemExit(f"unknown model {args.model!r}; registered: {sorted(registry)}")
    spec = registry[args.model]
    items = load_mix(args.data_dir, args.items, args.seed)
    texts = [x["input"] for x in items]
    log(f"{len(items):,} items (seed {args.seed}), {threads} torch threads")

    log("in-process optimum (EmbedRunner.run on everything at once)")
    optimum, ref = bench_optimum(spec, texts, args.warmup)
    st: Measurement | None = None
    if not args.skip_st:
        log("sentence-transformers encode(batch_size=32)")
        st = bench_st(
            spec, texts, args.warmup, optimum.extra["device"], optimum.extra["max_length"], ref
        )
    gc.collect()  # nothing of the in-process models may compete with the worker
    log("sluice end to end")
    with tempfile.TemporaryDirectory(prefix="sluicebench-") as tmp:
        e2e, download, problems = bench_sluice(args, items, threads, ref, Path(tmp))

    rows = [m for m in (e2e, optimum, st, download) if m is not None]
    figures: dict[str, Any] = {
        "items": len(items),
        "seed": args.seed,
        "model": args.model,
        "items_per_s": {
            "sluice": e2e.items_per_s,
            "in_process_optimum": optimum.items_per_s,
            "sentence_transformers": st.items_per_s if st else None,
        },
        "seconds": {m.name: m.seconds for m in rows},
        "results_download_lines_per_s": download.items_per_s,
        "results_download_mbytes": download.extra["mbytes"],
        "ratios": {
            "sluice / in-process optimum": _ratio(e2e, optimum),
            "sluice / sentence-transformers": _ratio(e2e, st),
            "in-process optimum / sentence-transformers": _ratio(optimum, st),
        },
        "padding_efficiency": {
            "planner, all items (optimum)": optimum.extra["padding_efficiency"],
            f"planner per {spec.chunk_size}-item chunk (sluice)": optimum.extra[
                "padding_efficiency_per_chunk"
            ],
            "sorted batches of 32 (s-t)": optimum.extra["padding_efficiency_st"],
        },
        "checks": {
            "min cosine, sluice vs optimum": e2e.extra["min_cosine_to_optimum"],
            "min cosine, s-t vs optimum": (st.extra["min_cosine_to_optimum"] if st else None),
        },
        "sluice": e2e.extra,
        "optimum": optimum.extra,
        "machine": {
            **machine_info(threads),
            "dtype": optimum.extra["dtype"],
            "device": optimum.extra["device"],
        },
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
