"""A redis-server and a PostgreSQL of the chaos tests' own, on free loopback ports, so that
the tests may kill, flush and restart them."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from cli.processes import free_port
from tests.services import require


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class RedisServer:
    """A throw-away redis-server (nothing kept on disk)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        if shutil.which("redis-server") is None:
            require("redis-server", FileNotFoundError("redis-server is not on PATH"))

    def start(self) -> None:
        """Start it on its port and wait until it answers."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL it: everything it held is gone."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def flushall(self) -> None:
        """Empty every database (queues, heartbeats, locks, nudges)."""
        redis.Redis.from_url(self.url).flushall()


class PostgresServer:
    """A throw-away PostgreSQL cluster (trust auth, fsync off) in a temporary directory."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        found = shutil.which("initdb") or (bindirs and f"{bindirs[-1]}/initdb")
        if not found or not Path(found).exists():
            require("PostgreSQL binaries", FileNotFoundError("initdb not found"))
        self.bin = Path(str(found)).parent
        self.root = Path(tempfile.mkdtemp(prefix="sluice-chaos-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        """Start the server on its port (sockets in its own directory)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=200"
        )
        self._ctl("-o", options, "-l", str(self.root / "server.log"), "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (immediate: like a crash, every connection cut)."""
        self._ctl("-m", mode, "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
