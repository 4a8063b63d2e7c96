"""`sluice demo`: migrate, start API and worker, submit a real dataset, watch it, summarise."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from rich.console import Console

from cli.client import Client
from cli.corpus import stdlib_paragraphs
from cli.follow import follow_job
from cli.inputs import read_inputs
from cli.processes import free_port, spawn, stop, wait_for_worker, wait_ready
from cli.upload import IMAGE_TYPES
from core.contracts.images import data_url

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
    name, items = _dataset(dataset, limit)
    if not items:
        raise SystemExit(f"no items in {name}")
    _serve_and_run(
        model=model,
        items=items,
        name=name,
        port=port,
        logs=logs,
        env={},
        summary=lambda client, job, seconds: _summary(client, job, items, seconds),
    )


def run_image_demo(*, limit: int, port: int | None, logs: Path, workdir: Path) -> None:
    """An image job end to end: a CNN trained on drawn shapes (kept in workdir for the next
    run), registered as classify_image, runs a held-out set of drawn images."""
    from cli.demo_images import prepare

    with console.status("training a small CNN on drawn shapes and drawing the job's images"):
        models_file, paths, accuracy, trained = prepare(workdir, limit)
    how = f"trained in {trained:.1f} s" if trained is not None else "trained by an earlier run"
    console.print(
        f"shapes-cnn {how} (held-out accuracy {accuracy:.1%}), saved with torch.export at "
        f"{workdir / 'shapes-cnn.pt2'}"
    )
    folder = workdir / "images"
    items = [
        {
            "custom_id": p.relative_to(folder).as_posix(),
            "input": data_url(p.read_bytes(), IMAGE_TYPES[p.suffix]),
        }
        for p in paths
    ]
    _serve_and_run(
        model="shapes-cnn",
        items=items,
        name=f"drawn shapes in {folder}",
        port=port,
        logs=logs,
        env={"SLUICE_MODELS_FILE": str(models_file)},
        summary=_image_summary,
    )


def _serve_and_run(
    *,
    model: str,
    items: list[dict],
    name: str,
    port: int | None,
    logs: Path,
    env: dict[str, str],
    summary: Callable[[Client, dict, float], None],
) -> None:
    """Migrate, start an API and a worker for the model, submit the items, follow the job
    with a progress bar and summarise it (client, final job, seconds from submit); stop
    both after."""
    from core.db import migrate, write_session
    from core.store.tenants import create_key

    revision = migrate()
    with write_session() as session:
        _, key = create_key(session=session, tenant_name="demo")
    console.print(
        f"[bold]sluice demo[/]: database at schema {revision}; {len(items):,} items "
        f"from {name}; model {model}"
    )
    port = free_port(port)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **env, "SLUICE_API_PORT": str(port)}
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
        summary(client, job, time.perf_counter() - started)
    finally:
        stop(worker)
        stop(api)
        console.print(f"stopped API and worker (logs in {logs})")


def _rate(job: dict, seconds: float) -> str:
    counts = job["counts"]
    return (
        f"\n[bold]{job['status']}[/]: {counts['total']:,} items "
        f"({counts['completed']:,} ok, {counts['failed']:,} failed) in "
        f"{seconds:.1f} s = [bold]{counts['total'] / seconds:,.0f} items/s[/] "
        "(submit to last result)"
    )


def _image_summary(client: Client, job: dict, seconds: float) -> None:
    console.print(_rate(job, seconds))
    right = total = 0
    sample = None
    for raw in client.results(job["id"]):
        line = orjson.loads(raw)
        if "output" not in line:
            continue
        truth = line["custom_id"].split("/", 1)[0]
        total += 1
        right += line["output"][0]["label"] == truth
        sample = sample or line
    if total:
        console.print(
            f"accuracy against the drawn shapes: [bold]{right / total:.1%}[/] of {total:,}"
        )
    if sample is not None:
        best = sample["output"][0]
        console.print(f"sample: {sample['custom_id']} -> {best['label']} ({best['score']:.3f})")
    console.print(
        f"results: sluice results {job['id']} -o results.csv "
        "(with SLUICE_API_URL and SLUICE_API_KEY set)"
    )


def _summary(client: Client, job: dict, items: list[dict], seconds: float) -> None:
    first = next(client.results(job["id"]), None)
    console.print(_rate(job, seconds))
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
