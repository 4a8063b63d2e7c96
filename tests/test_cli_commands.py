"""The CLI's job commands against a live API with no worker (so a job waits): Ctrl-C on
`submit --wait` says how to come back (and those commands work), `results` refuses a job
that still runs unless --partial, and jobs, files, models, batches, status and cancel print
readable tables and lines, or JSON."""

import json
import re
import shlex
import signal
import subprocess
import sys

import pytest

from tests.conftest import make_key
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def _sluice(args, env, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def sqlite_cfg(cfg):
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("the CLI is database-agnostic; once on SQLite is enough")
    return cfg


def _interrupted_submit(data, env):
    """`submit --wait`, interrupted once the job id is out: (job id, exit status, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "submit", str(data), "--model", "tiny-embed", "--wait"],
        env={**env, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread's stack
        # As from a terminal: a run started in the background (CI) may ignore SIGINT, and
        # a child inherits that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = proc.stdout.readline().strip()
        assert job_id.startswith("job_"), proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, stuck = proc.communicate(timeout=30)
            raise AssertionError(f"Ctrl-C did not end `submit --wait`:\n{stuck}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return job_id, proc.returncode, stderr


def test_a_waiting_job_from_submit_to_cancel(sqlite_cfg, tmp_path):
    stack = Stack(sqlite_cfg, tmp_path / "logs", make_key(sqlite_cfg.database_url, "cli"))
    stack.start_api()
    try:
        env = {**stack.env, "SLUICE_API_URL": stack.url, "SLUICE_API_KEY": stack.key}
        data = tmp_path / "texts.jsonl"
        data.write_text("".join(json.dumps({"input": f"text {i}"}) + "\n" for i in range(50)))

        job_id, code, stderr = _interrupted_submit(data, env)
        assert code == 130 and "Traceback" not in stderr, stderr
        assert "no worker serves tiny-embed now" in stderr
        assert f"stopped following {job_id}; it keeps running" in stderr
        follow = next(x for x in stderr.splitlines() if "follow it:" in x).split(": ", 1)[1]
        cancel = next(x for x in stderr.splitlines() if "cancel it:" in x).split(": ", 1)[1]
        assert follow.endswith(f"status {job_id} --follow") and cancel.endswith(f"cancel {job_id}")

        # A job that has not ended: its results are refused, or taken as they are.
        out = _sluice(["results", job_id, "-o", str(tmp_path / "r.jsonl")], env)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert f"{job_id} is validating (0 of 50 items done)" in out.stderr
        assert "--wait" in out.stderr and "--partial" in out.stderr
        assert not (tmp_path / "r.jsonl").exists()
        out = _sluice(["results", job_id, "--partial", "-o", str(tmp_path / "r.jsonl")], env)
        assert out.returncode == 0 and "writing the finished items only" in out.stderr
        assert (tmp_path / "r.jsonl").read_bytes() == b""

        out = _sluice(["status", job_id], env)
        assert out.returncode == 0, out.stderr
        assert "validating" in out.stdout and "in 29 days" in out.stdout
        assert re.search(r"created +(just now|\d+ s ago)", out.stdout), out.stdout
        out = _sluice(["jobs"], env)
        assert out.returncode == 0 and job_id in out.stdout and "tiny-embed" in out.stdout
        assert "STATUS" in out.stdout and "validating" in out.stdout
        assert [j["id"] for j in json.loads(_sluice(["jobs", "--json"], env).stdout)] == [job_id]
        out = _sluice(["jobs", "--status", "completed"], env)
        assert out.returncode == 0 and job_id not in out.stdout
        assert "no jobs like that" in out.stderr
        out = _sluice(["jobs", "--model", "tiny-embed", "--status", "validating"], env)
        assert job_id in out.stdout

        out = _sluice(["files"], env)
        assert out.returncode == 0 and "texts.jsonl" in out.stdout and "50" in out.stdout
        assert len(json.loads(_sluice(["files", "--json"], env).stdout)) == 1
        out = _sluice(["models"], env)
        assert out.returncode == 0 and "tiny-embed" in out.stdout and "32 dims" in out.stdout
        assert "no live worker for" in out.stderr
        models = json.loads(_sluice(["models", "--json"], env).stdout)
        assert {m["id"]: m["live_workers"] for m in models}["tiny-embed"] == 0
        out = _sluice(["batches"], env)
        assert out.returncode == 0 and "no batches" in out.stderr
        assert json.loads(_sluice(["batches", "--json"], env).stdout) == []

        # The commands Ctrl-C printed work as they are.
        done = subprocess.run(
            shlex.split(cancel), env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        kept = f"cancelled {job_id} (0 of 50 items done; their results are kept)"
        assert done.stdout.strip() == kept
        done = subprocess.run(
            shlex.split(follow), env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and "cancelled: 0 ok, 0 failed" in done.stderr
        out = _sluice(["cancel", job_id], env)
        assert out.stdout.strip() == (
            f"{job_id} had already ended (cancelled, 0 of 50 items done): nothing to cancel"
        )
        status = json.loads(_sluice(["status", job_id, "--json"], env).stdout)
        assert status["status"] == "cancelled"
    finally:
        stack.close()
