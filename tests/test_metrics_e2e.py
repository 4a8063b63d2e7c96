"""Metrics of real processes: a worker's /metrics on its own port after a small job, the
API's /metrics and model status beside it, and `sluice api --workers 2` summing both
processes' counters (multiprocess mode)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cli.processes import free_port, spawn, stop, wait_ready
from core.db import read_session
from core.tables import Chunk
from tests.prom import Exposition

pytestmark = pytest.mark.e2e
LONG = "many words " * 200  # past tiny-embed's 128 tokens


def _postgres_only(cfg) -> None:
    if cfg.database_url.startswith("sqlite"):
        pytest.skip("the metrics do not depend on the database; the in-process tests run both")


def _until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_worker_metrics_count_a_jobs_items(cfg, stack):
    _postgres_only(cfg)
    port = free_port()
    stack.start_worker("tiny-embed", env={"SLUICE_WORKER_METRICS_PORT": str(port)})
    inputs = [{"custom_id": f"c{i}", "input": f"text number {i}"} for i in range(40)]
    inputs += [{"custom_id": "long1", "input": LONG}, {"custom_id": "long2", "input": LONG}]
    job, _ = stack.run_to_end("tiny-embed", inputs, {"truncate": False})
    assert job["status"] == "completed"
    assert (job["counts"]["completed"], job["counts"]["failed"]) == (40, 2)
    with read_session(cfg.database_url) as s:
        chunks = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.job_id == job["id"]))

    def worker_metrics() -> Exposition:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200
        return Exposition(r.text)

    # The job shows completed once its last chunk is recorded; the count follows at once.
    m = _until(
        lambda: (x := worker_metrics()).value("sluice_items_total", status="completed") == 40 and x
    )
    assert m, worker_metrics().value("sluice_items_total")
    labels = {"model": "tiny-embed"}
    assert m.value("sluice_items_total", status="failed", **labels) == 2
    assert m.value("sluice_items_failed_total", code="input_too_long", **labels) == 2
    assert m.value("sluice_prompt_tokens_total", **labels) == job["usage"]["prompt_tokens"]
    assert m.value("sluice_chunk_seconds_count", task="embed", **labels) == chunks
    # every chunk's message carried its send time through the broker
    assert m.value("sluice_queue_wait_seconds_count", **labels) == chunks
    assert m.value("sluice_micro_batch_size_sum", **labels) == 40  # the long ones never ran
    real = m.value("sluice_micro_batch_tokens_total", kind="real", **labels)
    padded = m.value("sluice_micro_batch_tokens_total", kind="padded", **labels)
    assert 0 < real <= padded
    assert m.value("sluice_oom_backoffs_total", **labels) == 0
    assert m.value("sluice_lease_losses_total", **labels) == 0
    (info,) = m.label_sets("sluice_worker_info")
    host = socket.gethostname()
    assert info == {"host": host, "device": "cpu", "dtype": "float32", "model": "tiny-embed"}
    assert m.value("process_resident_memory_bytes") > 0

    # The API beside it: the job, the worker, and the worker's description for the dashboard.
    api = Exposition(stack.http.get("/metrics").text)
    assert api.value("sluice_jobs", model="tiny-embed", status="completed") == 1
    assert api.value("sluice_workers", model="tiny-embed") == 1
    assert api.value("sluice_queue_depth", model="tiny-embed") == 0
    # its heartbeat (every 5 s) carries the items/s of the last minute
    status = _until(
        lambda: (
            (
                w := {m["model"]: m for m in stack.http.get("/v1/models/status").json()["data"]}[
                    "tiny-embed"
                ]["workers"]
            )
            and w[0]["items_per_second"]
            and w
        ),
        timeout=20,
    )
    assert status, stack.http.get("/v1/models/status").text
    (worker,) = status
    assert worker["host"] == host and worker["name"].startswith(f"{host}:")
    assert (worker["device"], worker["dtype"]) == ("cpu", "float32")
    assert worker["items_per_second"] > 0 and time.time() - worker["last_heartbeat"] < 15


def test_two_api_processes_sum_their_counters(cfg, tmp_path):
    _postgres_only(cfg)
    shared = tmp_path / "prom"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"\0" * 64)  # a previous run's: cleaned away
    port = free_port()
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": cfg.database_url,
        "SLUICE_REDIS_URL": cfg.redis_url,
        "SLUICE_REDIS_PREFIX": cfg.redis_prefix,
        "SLUICE_MODELS_FILE": str(cfg.models_file),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    proc = spawn(["api", "--port", str(port), "--workers", "2"], env=env, log=tmp_path / "a.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        children = set(
            subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
        )
        sent = 0

        def pids_with_values() -> set[str]:
            return {p.stem.rsplit("_", 1)[1] for p in shared.glob("histogram_*.db")}

        # A new connection per request, many at once, until both processes have answered.
        with httpx.Client(
            base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            for _ in range(20):
                with ThreadPoolExecutor(8) as pool:
                    codes = list(pool.map(lambda _: client.get("/healthz").status_code, range(40)))
                assert codes == [200] * 40
                sent += 40
                if len(pids_with_values() & children) >= 2:
                    break
            assert len(pids_with_values() & children) >= 2, (children, pids_with_values())
            assert "999999" not in pids_with_values()
            scrape = client.get("/metrics")
        assert scrape.status_code == 200
        m = Exposition(scrape.text)
        healthz = {"route": "/healthz", "status": "200"}
        assert m.value("sluice_http_request_duration_seconds_count", **healthz) == sent
        assert m.value("sluice_api_processes") == 2
    finally:
        stop(proc)
    # each process left the live count as it stopped
    assert not list(shared.glob("gauge_livesum_*.db")), list(shared.iterdir())


def test_the_cli_gives_several_api_processes_a_fresh_directory(monkeypatch, tmp_path: Path):
    from cli.metrics_dir import MULTIPROC_ENV, multiprocess_metrics

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics(1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ
    with multiprocess_metrics(2) as made:
        assert made is not None and made.is_dir() and not any(made.iterdir())
        assert os.environ[MULTIPROC_ENV] == str(made)
    assert not made.exists() and MULTIPROC_ENV not in os.environ
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"x")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_metrics(1) as used:
        assert used == given and not (given / "counter_1.db").exists()
    assert (given / "keep.txt").exists()  # an operator's directory is never removed
