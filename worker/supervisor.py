"""`sluice workers --gpus 0,1|all`: one pinned worker process per GPU, restarted if it dies.

Torch-free: the supervisor never touches CUDA; each child pins itself before torch loads.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class GpuSpecError(ValueError):
    """--gpus is not `all` or a comma-separated list of GPU indices."""


def list_gpus() -> list[int]:
    """GPU indices as nvidia-smi numbers them (PCI bus order); empty without a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        return []
    return [int(line) for line in out.stdout.split() if line.strip().isdigit()]


def parse_gpus(spec: str, available: Callable[[], list[int]] = list_gpus) -> list[int]:
    """The GPU indices `spec` names; `all` means every GPU the driver reports."""
    spec = spec.strip()
    if spec == "all":
        gpus = available()
        if not gpus:
            raise GpuSpecError("--gpus all: no GPU found (nvidia-smi missing or reports none)")
        return gpus
    try:
        gpus = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError as exc:
        raise GpuSpecError(f"--gpus {spec!r}: expected `all` or indices like 0,1") from exc
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise GpuSpecError(f"--gpus {spec!r}: expected distinct indices >= 0")
    return gpus


def metrics_ports(gpus: Sequence[int], base: int | None) -> dict[int, int]:
    """Each worker's metrics port: the i-th GPU listed gets base + i (none without a base)."""
    if base is None:
        return {}
    if base + len(gpus) - 1 > 65535:
        raise GpuSpecError(f"--metrics-port {base}: {len(gpus)} workers need ports up to 65535")
    return {gpu: base + i for i, gpu in enumerate(gpus)}


def worker_command(
    gpu: int, models: str | None, threads: int | None, metrics_port: int | None = None
) -> list[str]:
    """The command line of one pinned worker."""
    cmd = [sys.executable, "-m", "cli.main", "worker", "--gpu", str(gpu)]
    if models:
        cmd += ["--models", models]
    if threads:
        cmd += ["--threads", str(threads)]
    if metrics_port is not None:
        cmd += ["--metrics-port", str(metrics_port)]
    return cmd


@dataclass
class Child:
    """One supervised worker and its recent crash times."""

    gpu: int
    command: list[str]
    proc: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)


class Supervisor:
    """Keeps one worker per GPU alive; gives up on a GPU whose worker keeps crashing."""

    def __init__(
        self,
        commands: dict[int, list[str]],
        *,
        max_crashes: int = 5,
        window_seconds: float = 60.0,
        spawn: Callable[[Sequence[str]], subprocess.Popen] = subprocess.Popen,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(gpu, cmd) for gpu, cmd in commands.items()]
        self.max_crashes, self.window = max_crashes, window_seconds
        self.spawn, self.clock = spawn, clock
        self.stopping = False

    def start(self) -> None:
        """Start every worker."""
        for child in self.children:
            child.proc = self.spawn(child.command)
            log.info("started worker for GPU %d (pid %d)", child.gpu, child.proc.pid)

    def poll_once(self) -> bool:
        """Restart workers that exited; False once none is left to supervise."""
        for child in self.children:
            if child.proc is None or child.proc.poll() is None or self.stopping:
                continue
            now = self.clock()
            child.crashes = [t for t in child.crashes if now - t < self.window] + [now]
            code = child.proc.returncode
            if len(child.crashes) >= self.max_crashes:
                log.error(
                    "worker for GPU %d exited %d times in %.0fs (last code %s); giving up on it",
                    child.gpu,
                    len(child.crashes),
                    self.window,
                    code,
                )
                child.proc = None
                continue
            log.warning("worker for GPU %d exited with %s; restarting", child.gpu, code)
            child.proc = self.spawn(child.command)
        return any(c.proc is not None for c in self.children)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every worker (each releases its chunk), then wait; SIGKILL stragglers."""
        self.stopping = True
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def run(self, interval: float = 1.0) -> int:
        """Supervise until SIGTERM/SIGINT or until every GPU was given up; exit code."""

        def _stop(*_: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        alive = True
        while alive and not self.stopping:
            time.sleep(interval)
            alive = self.poll_once()
        self.stop()
        return 0 if alive else 1
