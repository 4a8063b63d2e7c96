"""What the benchmarks share: figures, a throwaway sluice stack (API + one worker on a fresh
database and Redis prefix), a timed job, and the checks every result stream must pass."""

from __future__ import annotations

import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


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
    completion_tokens: int | None = None

    @property
    def items_per_s(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    @property
    def tokens_per_s(self) -> float | None:
        """Completion tokens per second, where the count is known."""
        if self.completion_tokens is None or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds


def ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    """a's items/s over b's, where both were measured."""
    return a.items_per_s / b.items_per_s if a and b else None


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
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _schema_url(url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return u.render_as_string(hide_password=False)


@dataclass
class Stack:
    """A running API and worker, and a client with a key."""

    client: Any
    api_url: str
    db_url: str
    key: str = ""
    api_pid: int = 0
    worker_pid: int = 0


@contextmanager
def sluice_stack(
    *,
    model: str,
    models_file: Path,
    threads: int,
    max_inputs: int,
    workdir: Path,
    logs: Path | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    gpus: str | None = None,
    worker: bool = True,
) -> Iterator[Stack]:
    """API and one worker for `model` on a fresh SQLite file in workdir (database_url None
    or the bare "sqlite:///"), or a fresh schema of a PostgreSQL database_url, and a unique
    Redis prefix; every trace is removed afterwards. `gpus` runs the worker through
    `sluice workers --gpus` instead of a single `sluice worker`; worker=False starts the
    API alone (its stack's worker_pid is 0)."""
    import redis
    from sqlalchemy import create_engine, text

    from cli.client import Client
    from cli.processes import free_port, spawn, stop, wait_for_worker, wait_ready
    from core.db import get_engine, migrate, write_session
    from core.store.tenants import create_key

    tag = uuid.uuid4().hex[:12]
    prefix = f"sluicebench:{tag}:"
    redis_url = os.environ.get("SLUICE_REDIS_URL", "redis://127.0.0.1:6379/0")
    if database_url in (None, "", "sqlite:///"):
        database_url = f"sqlite:///{workdir / 'bench.db'}"
    base_url = database_url
    schema = f"sluicebench_{tag}" if base_url.startswith("postgresql") else None
    db_url = _schema_url(base_url, schema) if schema else base_url
    admin = create_engine(base_url) if schema else None
    if admin is not None:
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
        "SLUICE_MODELS_FILE": str(models_file),
        "SLUICE_MAX_INPUTS_PER_JOB": str(max(100_000, max_inputs)),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        **(extra_env or {}),
    }
    logs = logs or workdir / "logs"
    procs: list[Any] = []
    try:
        migrate(db_url)
        with write_session(db_url) as session:
            _, key = create_key(session=session, tenant_name="bench")
        api = spawn(["api", "--port", str(port)], env=env, log=logs / "api.log")
        procs.append(api)
        worker_proc = None
        if worker:
            # With gpus, the supervisor starts one worker pinned to each GPU.
            command = ["workers", "--gpus", gpus] if gpus else ["worker"]
            worker_proc = spawn([*command, "--models", model], env=env, log=logs / "worker.log")
            procs.append(worker_proc)
        wait_ready(api_url, api)
        client = Client(api_url, key, timeout=600)
        if worker_proc is not None:
            log(f"waiting for the worker to load {model}")
            wait_for_worker(client, model, worker_proc)
        yield Stack(
            client=client,
            api_url=api_url,
            db_url=db_url,
            key=key,
            api_pid=api.pid,
            worker_pid=worker_proc.pid if worker_proc else 0,
        )
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
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@contextmanager
def tiny_stack(workdir: Path, **options: Any) -> Iterator[Stack]:
    """sluice_stack (threads, max_inputs and its other options as given) serving the tests'
    seeded tiny-embed model, built in workdir: for benchmarks of the platform's own costs
    rather than a model's."""
    from tests.tiny_models import build_registry

    models_file = build_registry(workdir / "models")
    with sluice_stack(
        model="tiny-embed", models_file=models_file, workdir=workdir, **options
    ) as stack:
        yield stack


def use_threads(threads: int | None) -> int:
    """Set torch's thread count for in-process measurements (None: torch's own) and
    return it, so sluice's worker is given the same."""
    import torch

    chosen = threads or torch.get_num_threads()
    torch.set_num_threads(chosen)
    return chosen


def finish(client: Any, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Long-poll a job until it reaches a terminal status; cancel it after timeout."""
    from core.states import JOB_TERMINAL

    deadline = time.monotonic() + timeout
    while job["status"] not in JOB_TERMINAL:
        if time.monotonic() > deadline:
            client.cancel(job["id"])
            raise TimeoutError(f"job {job['id']} not done after {timeout:.0f}s")
        job = client.job(job["id"], wait=2)
    return job


def timed_job(
    stack: Stack,
    *,
    model: str,
    items: list[dict[str, Any]],
    params: dict[str, Any] | None,
    warmup: int,
    timeout: float,
    problems: list[str],
) -> tuple[dict[str, Any], float, float]:
    """A small warm-up job, then the timed one from POST to completed: (job, seconds to
    completed, seconds the POST took). Problems with the job go into `problems`."""
    client = stack.client
    # A live heartbeat comes before Celery consumes, and the first forward pass is slow:
    # a small job first (none with warmup 0), as the in-process measurements get theirs.
    if warmup:
        warm = client.submit(
            model=model, inputs=items[:warmup], params=params, metadata={"source": "bench-warmup"}
        )
        if finish(client, warm, timeout)["status"] != "completed":
            raise RuntimeError(f"warm-up job {warm['id']} did not complete")
    log(f"submitting {len(items):,} items to {stack.api_url} ({stack.db_url.split('@')[-1]})")
    started = time.perf_counter()
    job = client.submit(model=model, inputs=items, params=params, metadata={"source": "bench"})
    submitted = time.perf_counter() - started
    job = finish(client, job, timeout)
    seconds = time.perf_counter() - started
    if job["status"] != "completed":
        problems.append(f"job ended {job['status']}")
    if job["counts"]["failed"]:
        problems.append(f"{job['counts']['failed']} items failed")
    log(f"job {job['id']} {job['status']} in {seconds:.1f}s; downloading results")
    return job, seconds, submitted


def read_results(
    stack: Stack,
    job_id: str,
    items: list[dict[str, Any]],
    on_output: Callable[[int, dict[str, Any]], None],
    problems: list[str],
) -> Measurement:
    """Download a job's results, timed; check every index comes once with its custom_id and
    an output (handed to on_output), noting what fails in `problems`."""
    n = len(items)
    seen = [0] * n
    lines = nbytes = errors = 0
    started = time.perf_counter()
    for raw in stack.client.results(job_id):
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
        on_output(index, row)
    seconds = time.perf_counter() - started
    if lines != n:
        problems.append(f"{lines} result lines for {n} items")
    missing, doubled = seen.count(0), sum(s > 1 for s in seen)
    if missing or doubled:
        problems.append(f"{missing} indices missing, {doubled} seen more than once")
    if errors:
        problems.append(f"{errors} result lines are errors")
    return Measurement("results download", lines, seconds, {"mbytes": nbytes / 1e6})


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MB; NaN where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
