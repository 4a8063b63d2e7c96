"""The README's by-hand quick start, run as it is written: its block is read from the
README, `api` and `worker` started as the terminals of their own it asks for, and the rest
run in one shell (only `.venv/bin/sluice` becomes this interpreter's `-m cli.main`)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cli.processes import free_port, stop, wait_ready
from tests.services import REDIS_URL

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> list[str]:
    """The command lines of the README's by-hand block."""
    text = README.read_text()
    block = text.split("By hand, the demo's steps are", 1)[1].split("```bash\n", 1)[1]
    return [line for line in block.split("\n```", 1)[0].splitlines() if line.strip()]


def test_the_readme_quick_start_runs_as_written(tmp_path, redis_prefix):
    lines = quick_start()
    assert lines[0] == ".venv/bin/sluice migrate" and "results $JOB" in lines[-1]
    sluice = f"{shlex.quote(sys.executable)} -m cli.main"
    lines = [line.replace(".venv/bin/sluice", sluice) for line in lines]
    serving = [line for line in lines if re.search(r"cli\.main (api|worker)\b", line)]
    assert len(serving) == 2
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")},
        "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 'sluice.db'}",
        "SLUICE_REDIS_URL": REDIS_URL,
        "SLUICE_REDIS_PREFIX": redis_prefix,
        "SLUICE_API_PORT": str(port),  # the README's 8000, moved off other tests' way
        "SLUICE_API_URL": f"http://127.0.0.1:{port}",
    }

    def shell(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-ec", script], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    first = shell(lines[0])
    assert first.returncode == 0, first.stderr
    procs = [
        subprocess.Popen(
            ["bash", "-c", "exec " + line.split("#")[0]],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for line in serving
    ]
    try:
        wait_ready(env["SLUICE_API_URL"], procs[0])
        rest = shell("\n".join(line for line in lines[1:] if line not in serving))
        assert rest.returncode == 0, rest.stderr
        assert "completed: 2 ok, 0 failed" in rest.stderr
        assert "all-minilm-l6-v2" in rest.stdout and "completed" in rest.stdout  # sluice jobs
        table = pq.read_table(tmp_path / "results.parquet")
        assert table.column("custom_id").to_pylist() == ["a", "b"]
    finally:
        for proc in procs:
            stop(proc)
