"""Starting and stopping sluice's own API and worker processes (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx


def free_port(preferred: int | None = None) -> int:
    """A TCP port on loopback that nothing listens on (the preferred one if free)."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def spawn(args: list[str], *, env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """Start `python -m cli.main ARGS` with its output in a log file, in its own group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        env=dict(env),
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it is still alive after timeout."""
    if proc.poll() is not None:
        return
    with_group = os.getpgid(proc.pid) if hasattr(os, "getpgid") else None
    try:
        if with_group:
            os.killpg(with_group, signal.SIGTERM)
        else:
            proc.terminate()
        proc.wait(timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            if with_group:
                os.killpg(with_group, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(5)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until GET url/readyz answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API process exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"API at {url} not ready after {timeout:.0f}s")


def wait_for_worker(
    client: Any, model: str, worker: subprocess.Popen, timeout: float = 300.0
) -> None:
    """Wait until /v1/models shows a live worker for the model; raise if the worker dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}")
        live = {m["id"]: m["live_workers"] for m in client.models()["data"]}
        if live.get(model):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no live worker for {model} after {timeout:.0f}s")
