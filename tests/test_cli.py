"""The CLI against live processes: submit --wait, status, results -o, and the demo itself."""

import json
import os
import stat
import subprocess
import sys

import orjson
import pytest

from cli.processes import stop, wait_ready
from tests.conftest import make_key
from tests.stack import Stack
from tests.tiny_models import bench_texts

pytestmark = pytest.mark.e2e


def _sluice(args, env, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def sqlite_cfg(cfg):
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("the CLI is database-agnostic; once on SQLite is enough")
    return cfg


def test_submit_wait_status_results(sqlite_cfg, tmp_path):
    stack = Stack(sqlite_cfg, tmp_path / "logs", make_key(sqlite_cfg.database_url, "cli"))
    stack.start_api()
    try:
        stack.start_worker("tiny-embed")
        data = tmp_path / "in.jsonl"
        texts = bench_texts(900, seed=4)
        data.write_text(
            "".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts))
        )
        env = {**stack.env, "SLUICE_API_URL": stack.url, "SLUICE_API_KEY": stack.key}
        out = _sluice(["submit", str(data), "--model", "tiny-embed", "--wait"], env)
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip()
        assert "completed: 900 ok, 0 failed" in out.stderr and "items/s" in out.stderr
        status = json.loads(_sluice(["status", job_id, "--json"], env).stdout)
        assert status["status"] == "completed" and status["counts"]["completed"] == 900
        dest = tmp_path / "out.jsonl"
        assert _sluice(["results", job_id, "-o", str(dest)], env).returncode == 0
        lines = [orjson.loads(x) for x in dest.read_bytes().splitlines()]
        assert [x["custom_id"] for x in lines] == [f"r{i}" for i in range(900)]
        out = _sluice(["retry", job_id], env)  # nothing failed: one line, the server's code
        assert out.returncode == 1 and "HTTP 409 nothing_to_retry" in out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) <= 2
        # results --wait follows a running job to its end, then writes all of it.
        again = _sluice(["submit", str(data), "--model", "tiny-embed"], env).stdout.strip()
        later = tmp_path / "later.csv"
        out = _sluice(["results", again, "--wait", "-o", str(later)], env)
        assert out.returncode == 0 and "completed: 900 ok, 0 failed" in out.stderr, out.stderr
        assert len(later.read_text().splitlines()) == 901  # a header and a row per item

        mixed = tmp_path / "mixed.jsonl"
        mixed.write_text('{"input": "fine"}\n{"input": 42}\n{"input": "also fine"}\n')
        args = ["submit", str(mixed), "--model", "tiny-embed", "--wait"]
        out = _sluice([*args, "--on-invalid", "skip"], env)
        assert out.returncode == 0, out.stderr
        assert "completed: 2 ok, 1 failed" in out.stderr and "line 2: invalid_input" in out.stderr
        # Past the lines submit reads first, invalid lines reach the worker's validation: it
        # refuses the file, and the CLI shows why (10 errors, the count of the rest, a hint).
        late = tmp_path / "late.jsonl"
        rows = [{"input": f"text {i}"} if i < 150 else {"input": i} for i in range(165)]
        late.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = _sluice(["submit", str(late), "--model", "tiny-embed", "--wait"], env)
        assert out.returncode == 1, out.stderr
        assert "0 ok, 0 failed" not in out.stderr
        assert "refused in validation" in out.stderr and "line 151: invalid_input" in out.stderr
        assert "line 160:" in out.stderr and "line 161:" not in out.stderr
        assert "... and 5 more" in out.stderr and "--on-invalid skip" in out.stderr
    finally:
        stack.close()


def test_demo_runs_the_main_job(sqlite_cfg, tmp_path):
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SLUICE_REDIS_PREFIX": sqlite_cfg.redis_prefix,
        "SLUICE_MODELS_FILE": str(sqlite_cfg.models_file),
    }
    out = _sluice(
        ["demo", "--limit", "2000", "--model", "tiny-embed", "--port", "0"], env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "completed: 2,000 items (2,000 ok, 0 failed)" in out.stderr
    assert "items/s" in out.stderr and "32 dims" in out.stderr
    assert "stopped API and worker" in out.stderr
    key_file = tmp_path / ".sluice" / "demo.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The closing hint works as printed: the API in one terminal, the rest in another.
    hint = out.stderr.split("start the API in another terminal:\n", 1)[1]
    api_line, rest = hint.split("\nthen here:\n", 1)
    job_id = out.stderr.split("submitted ", 1)[1].split()[0]
    assert f"results {job_id} -o results.jsonl" in rest
    port = int(api_line.rsplit("--port ", 1)[1])
    api = subprocess.Popen(
        ["bash", "-c", f"exec {api_line.strip()}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", api)
        done = subprocess.run(
            ["bash", "-ec", rest], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "completed" in done.stdout and "2,000 items: 2,000 ok, 0 failed" in done.stdout
        lines = (tmp_path / "results.jsonl").read_bytes().splitlines()
        assert len(lines) == 2000 and orjson.loads(lines[0])["custom_id"] == "doc-0"
    finally:
        stop(api)


def test_the_image_demo_trains_a_cnn_and_runs_an_image_job(sqlite_cfg, tmp_path):
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SLUICE_REDIS_PREFIX": sqlite_cfg.redis_prefix,
    }
    out = _sluice(["demo", "--images", "--limit", "400", "--port", "0"], env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "completed: 400 items (400 ok, 0 failed)" in out.stderr
    assert "items/s" in out.stderr and "accuracy against the drawn shapes" in out.stderr
    accuracy = float(out.stderr.split("accuracy against the drawn shapes: ")[1].split("%")[0])
    assert accuracy > 60  # a trained network, not chance (25%)
    assert (tmp_path / ".sluice" / "demo-images" / "shapes-cnn.pt2").is_file()
    key = (tmp_path / ".sluice" / "demo.key").read_text()
    again = _sluice(["demo", "--images", "--limit", "40", "--port", "0"], env, cwd=tmp_path)
    assert again.returncode == 0 and "trained by an earlier run" in again.stderr
    assert (tmp_path / ".sluice" / "demo.key").read_text() == key  # the database knows it
    assert "-o results.csv" in again.stderr
    assert "SLUICE_API_KEY=$(cat .sluice/demo.key)" in again.stderr
    out = _sluice(["demo", "--images", "some.jsonl"], env, cwd=tmp_path)
    assert out.returncode == 2 and "give no dataset" in out.stderr
