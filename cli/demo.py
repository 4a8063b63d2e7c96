"""`sluice demo`: migrate, start API and worker, submit a real dataset, watch it, summarise,
and end with commands that find the job again (its key is kept in .sluice/demo.key)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from rich.console import Console

from cli.app import program
from cli.client import Client
from cli.corpus import stdlib_paragraphs
from cli.follow import watch
from cli.inputs import read_inputs
from cli.processes import free_port, spawn, stop, wait_for_worker, wait_ready
from cli.upload import IMAGE_TYPES
from core.contracts.images import data_url

console = Console(stderr=True)
# The demo tenant's key, kept between runs (mode 0600) so its jobs can be read afterwards.
KEY_FILE = Path(".sluice/demo.key")


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
    job_id, port = _serve_and_run(
        model=model,
        items=items,
        name=name,
        port=port,
        logs=logs,
        env={},
        summary=lambda client, job, seconds: _summary(client, job, items, seconds),
    )
    _closing_hint(job_id, port, "results.jsonl")


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
    job_id, port = _serve_and_run(
        model="shapes-cnn",
        items=items,
        name=f"drawn shapes in {folder}",
        port=port,
        logs=logs,
        env={"SLUICE_MODELS_FILE": str(models_file)},
        summary=_image_summary,
    )
    _closing_hint(job_id, port, "results.csv")


def demo_key() -> str:
    """The demo tenant's key from KEY_FILE if this database knows it, else a new one,
    written there (readable by its owner alone)."""
    from core.db import read_session, write_session
    from core.store.tenants import caller_for_key, create_key

    if KEY_FILE.is_file():
        key = KEY_FILE.read_text().strip()
        with read_session() as session:
            if caller_for_key(session=session, key=key) is not None:
                return key
    with write_session() as session:
        _, key = create_key(session=session, tenant_name="demo")
    KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    KEY_FILE.chmod(0o600)  # O_CREAT's mode does not apply to a file that existed
    return key


def _closing_hint(job_id: str, port: int, output: str) -> None:
    """Commands, verbatim, that restart what reading the job needs (the API) and read it."""
    p = program()
    console.print(
        "\nThe API and worker are stopped. To come back to this job, start the API in "
        f"another terminal:\n  {p} api --port {port}\nthen here:\n"
        f"  export SLUICE_API_URL=http://127.0.0.1:{port} SLUICE_API_KEY=$(cat {KEY_FILE})\n"
        f"  {p} status {job_id}\n  {p} results {job_id} -o {output}",
        highlight=False,
        markup=False,
        soft_wrap=True,
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
) -> tuple[str, int]:
    """Migrate, start an API and a worker for the model, submit the items, follow the job
    with a progress bar and summarise it (client, final job, seconds from submit); stop
    both after. Returns the job's id and the API's port."""
    from core.db import migrate

    revision = migrate()
    key = demo_key()
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
        job = watch(client, job["id"], console).data
        summary(client, job, time.perf_counter() - started)
    finally:
        stop(worker)
        stop(api)
        console.print(f"stopped API and worker (logs in {logs})")
    return job["id"], port


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
