"""`sluice demo`: migrate, start API and worker, submit a real dataset, watch it, summarise."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import orjson
from rich.console import Console

from cli.client import Client
from cli.corpus import stdlib_paragraphs
from cli.follow import follow_job
from cli.inputs import read_inputs
from cli.processes import free_port, spawn, stop, wait_for_worker, wait_ready

console = Console(stderr=True)


def _dataset(path: Path | None, limit: int) -> tuple[str, list[dict]]:
    if path is None:
        texts = stdlib_paragraphs(limit)
        return (
            "Python standard library docstrings",
            [{"custom_id": f"doc-{i}", "input": t} for i, t in enumerate(texts)],
        )
    return str(path), list(read_inputs(path, limit))


def run_demo(*, dataset: Path | None, limit: int, model: str, port: int | None, logs: Path) -> None:
    """The main job end to end on the embedded default (SQLite + local Redis)."""
    from core.db import migrate, write_session
    from core.store.tenants import create_key

    revision = migrate()
    with write_session() as session:
        _, key = create_key(session=session, tenant_name="demo")
    name, items = _dataset(dataset, limit)
    if not items:
        raise SystemExit(f"no items in {name}")
    console.print(
        f"[bold]sluice demo[/]: database at schema {revision}; {len(items):,} items "
        f"from {name}; model {model}"
    )
    port = free_port(port)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SLUICE_API_PORT": str(port)}
    api = spawn(["api", "--port", str(port)], env=env, log=logs / "api.log")
    worker = spawn(["worker", "--models", model], env=env, log=logs / "worker.log")
    try:
        wait_ready(url, api)
        client = Client(url, key)
        with console.status(f"loading {model} in the worker"):
            wait_for_worker(client, model, worker)
        started = time.perf_counter()
        job = client.submit(model=model, inputs=items, metadata={"source": "demo"})
        console.print(f"submitted [bold]{job['id']}[/] ({job['counts']['total']:,} items) to {url}")
        job = follow_job(client, job["id"], console)
        seconds = time.perf_counter() - started
        _summary(client, job, items, seconds)
    finally:
        stop(worker)
        stop(api)
        console.print(f"stopped API and worker (logs in {logs})")


def _summary(client: Client, job: dict, items: list[dict], seconds: float) -> None:
    counts = job["counts"]
    first = next(client.results(job["id"]), None)
    console.print(
        f"\n[bold]{job['status']}[/]: {counts['total']:,} items "
        f"({counts['completed']:,} ok, {counts['failed']:,} failed) in "
        f"{seconds:.1f} s = [bold]{counts['total'] / seconds:,.0f} items/s[/] "
        "(submit to last result)"
    )
    if first is not None:
        line = orjson.loads(first)
        text = items[line["index"]]["input"]
        vec = line.get("output") or []
        norm = math.sqrt(sum(v * v for v in vec))
        console.print(
            f"sample: {line['custom_id']} {text[:70]!r}...\n  -> {len(vec)} dims, "
            f"norm {norm:.4f}, first {[round(v, 4) for v in vec[:4]]}"
        )
    console.print(
        f"results: sluice results {job['id']} -o results.jsonl "
        "(with SLUICE_API_URL and SLUICE_API_KEY set)"
    )
