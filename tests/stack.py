"""Starting the real API and worker processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from cli.processes import free_port, spawn, stop, wait_ready
from core.config import Settings

TERMINAL = {"completed", "failed", "cancelled", "expired"}


class Stack:
    """An API process and worker processes sharing one test database and Redis prefix."""

    def __init__(self, cfg: Settings, logs: Path, key: str) -> None:
        self.cfg, self.logs, self.key = cfg, logs, key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SLUICE_DATABASE_URL": cfg.database_url,
            "SLUICE_REDIS_URL": cfg.redis_url,
            "SLUICE_REDIS_PREFIX": cfg.redis_prefix,
            "SLUICE_MODELS_FILE": str(cfg.models_file),
            "SLUICE_LEASE_SECONDS": str(cfg.lease_seconds),
            "SLUICE_QUEUE_LEASE_SECONDS": str(cfg.queue_lease_seconds),
            "SLUICE_SWEEP_INTERVAL_SECONDS": str(cfg.sweep_interval_seconds),
            "SLUICE_DISPATCH_INTERVAL_SECONDS": str(cfg.dispatch_interval_seconds),
            "SLUICE_CANCEL_CHECK_SECONDS": str(cfg.cancel_check_seconds),
            "SLUICE_MAX_ATTEMPTS": str(cfg.max_attempts),
            "SLUICE_CHUNK_TARGET_SECONDS": str(cfg.chunk_target_seconds),
            "SLUICE_WEBHOOK_ALLOW_PRIVATE": str(cfg.webhook_allow_private).lower(),
            "SLUICE_WEBHOOK_RETRY_BASE_SECONDS": str(cfg.webhook_retry_base_seconds),
            "SLUICE_WEBHOOK_TIMEOUT_SECONDS": str(cfg.webhook_timeout_seconds),
            "SLUICE_WEBHOOK_LEASE_SECONDS": str(cfg.webhook_lease_seconds),
            "SLUICE_WEBHOOK_POLL_SECONDS": str(cfg.webhook_poll_seconds),
            "TOKENIZERS_PARALLELISM": "false",
        }
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.http = httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
        )

    def start_api(self) -> None:
        """Start the API and wait for /readyz."""
        self.api = spawn(["api", "--port", str(self.port)], env=self.env, log=self.logs / "api.log")
        wait_ready(self.url, self.api)

    def start_worker(
        self, models: str, wait: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start a worker (with extra environment) and (by default) wait until it
        heartbeats for its models."""
        proc = spawn(
            ["worker", "--models", models],
            env={**self.env, **(env or {})},
            log=self.logs / f"worker{len(self.workers)}.log",
        )
        self.workers.append(proc)
        if wait:
            deadline = time.monotonic() + 120
            wanted = models.split(",")
            while time.monotonic() < deadline:
                assert proc.poll() is None, self.log_tail(len(self.workers) - 1)
                live = {
                    m["id"]: m["live_workers"] for m in self.http.get("/v1/models").json()["data"]
                }
                if all(live.get(m) for m in wanted):
                    return proc
                time.sleep(0.2)
            raise TimeoutError("worker did not come up:\n" + self.log_tail(len(self.workers) - 1))
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process (no cleanup of any kind runs)."""
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        proc.wait(10)

    def submit(self, texts: list[str], model: str, **extra: object) -> dict:
        """POST a job of texts with custom_ids `item-N`."""
        r = self.http.post(
            "/v1/jobs",
            json={
                "model": model,
                "inputs": [{"custom_id": f"item-{i}", "input": t} for i, t in enumerate(texts)],
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        return r.json()

    def upload(self, data: bytes, purpose: str = "jobs") -> dict:
        """POST a JSONL file."""
        r = self.http.post(
            "/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": purpose}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def submit_file(self, file_id: str, model: str, **extra: object) -> dict:
        """POST a job of an uploaded file."""
        r = self.http.post("/v1/jobs", json={"model": model, "input_file_id": file_id, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def run_to_end(self, model: str, inputs: list[dict], params: dict) -> tuple[dict, list[dict]]:
        """POST a job, wait until it ends; the final job and its result lines, which must
        come in input order."""
        r = self.http.post("/v1/jobs", json={"model": model, "inputs": inputs, "params": params})
        assert r.status_code == 201, r.text
        job = self.wait_until(r.json()["id"], lambda j: j["status"] in TERMINAL)
        lines = [orjson.loads(x) for x in self.results(job["id"])]
        assert [x["index"] for x in lines] == list(range(len(lines)))
        return job, lines

    def job(self, job_id: str, wait: float = 0) -> dict:
        """GET a job (long-polling up to wait seconds)."""
        r = self.http.get(f"/v1/jobs/{job_id}", params={"wait": wait})
        assert r.status_code == 200, r.text
        return r.json()

    def wait_until(self, job_id: str, pred, timeout: float = 240) -> dict:  # type: ignore[no-untyped-def]
        """Poll a job until pred(job) holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id, wait=1)
            if pred(job):
                return job
        raise TimeoutError(f"job {job_id} stuck: {self.job(job_id)}\n{self.log_tail(0)}")

    def results(self, job_id: str) -> list[bytes]:
        """All result lines of a job."""
        r = self.http.get(f"/v1/jobs/{job_id}/results")
        assert r.status_code == 200, r.text
        return [line for line in r.content.split(b"\n") if line]

    def log_tail(self, worker: int, n: int = 3000) -> str:
        """The end of a worker's log, for failure messages."""
        path = self.logs / f"worker{worker}.log"
        return path.read_text()[-n:] if path.exists() else ""

    def close(self) -> None:
        """Stop every process started."""
        for proc in self.workers:
            stop(proc)
        if self.api:
            stop(self.api)
        self.http.close()
