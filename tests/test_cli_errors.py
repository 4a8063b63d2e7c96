"""Every common CLI mistake, run as a real `sluice` process: at most two lines on stderr
(what went wrong, what to do), a non-zero exit and no traceback (unless --debug); and a
submit that fails its checks leaves no file behind."""

import json
import os
import subprocess
import sys

import pytest

from cli.processes import free_port
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


def _one_or_two_lines(out, *wanted, code=None):
    """The run failed with a short message holding every wanted text, and no traceback."""
    assert out.returncode != 0, out
    if code is not None:
        assert out.returncode == code, out
    assert "Traceback" not in out.stderr, out.stderr
    assert 1 <= len(out.stderr.strip().splitlines()) <= 2, out.stderr
    for text in wanted:
        assert text in out.stderr, (text, out.stderr)


@pytest.fixture
def bare_env(tmp_path):
    """An environment with no API key and no server settings of the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    return {**env, "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}


def test_mistakes_without_a_server(bare_env, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"input": "hello"}\n')
    out = _sluice(["status", "job_x"], bare_env)
    _one_or_two_lines(out, "SLUICE_API_KEY is not set", "keys create --tenant NAME", code=2)

    down = {**bare_env, "SLUICE_API_KEY": "sk-whatever", "SLUICE_API_URL": "http://127.0.0.1:9"}
    for args in (["status", "job_x"], ["jobs"], ["submit", str(data), "--model", "m"]):
        out = _sluice(args, down)
        _one_or_two_lines(out, "cannot reach http://127.0.0.1:9", "api`", code=1)
    debug = _sluice(["--debug", "status", "job_x"], down)
    assert debug.returncode == 1 and "Traceback" in debug.stderr  # --debug keeps it

    # Checked before any request: the API is not even there.
    out = _sluice(["submit", str(data), "--model", "m", "--params", "{"], down)
    _one_or_two_lines(out, "--params is not JSON", code=2)
    out = _sluice(["submit", str(data), "--model", "m", "--params", "[1]"], down)
    _one_or_two_lines(out, "--params must be a JSON object", code=2)
    out = _sluice(["submit", str(tmp_path / "missing.jsonl"), "--model", "m"], down)
    _one_or_two_lines(out, "missing.jsonl: no such file", code=2)
    out = _sluice(["retry", "job_x", "--include", "everything"], down)
    _one_or_two_lines(out, "--include takes failed, cancelled or both", code=2)
    out = _sluice(["results", "job_x", "-o", str(tmp_path / "out.xlsx")], down)
    _one_or_two_lines(out, ".xlsx is not a results format", ".jsonl, .csv or .parquet", code=2)
    assert not (tmp_path / "out.xlsx").exists()
    # Usage mistakes too: what is wrong, then where the command's help is.
    out = _sluice(["submit", str(data), "--model", "m", "--bogus"], down)
    _one_or_two_lines(out, "No such option: --bogus", "submit --help`", code=2)
    out = _sluice(["tenants", "create", "acme", "--weight", "0"], down)
    _one_or_two_lines(out, "Invalid value for '--weight'", "tenants create --help`", code=2)
    out = _sluice(["status"], down)
    _one_or_two_lines(out, "Missing argument", "status --help`", code=2)

    # A database never migrated: the server commands say what to run.
    for args in (["keys", "create", "--tenant", "me"], ["api", "--port", str(free_port())]):
        out = _sluice(args, bare_env)
        _one_or_two_lines(out, "run `sluice migrate`", code=1)

    production = {**bare_env, "SLUICE_ENVIRONMENT": "production"}
    for args in (["migrate"], ["api"], ["keys", "create", "--tenant", "me"]):
        out = _sluice(args, production)
        _one_or_two_lines(out, "invalid settings: SLUICE_KEY_PEPPER must be set", code=2)


@pytest.fixture
def sqlite_cfg(cfg):
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("the CLI is database-agnostic; once on SQLite is enough")
    return cfg


def test_mistakes_against_a_live_api(sqlite_cfg, tmp_path):
    stack = Stack(sqlite_cfg, tmp_path / "logs", make_key(sqlite_cfg.database_url, "cli"))
    stack.start_api()
    try:
        env = {**stack.env, "SLUICE_API_URL": stack.url, "SLUICE_API_KEY": stack.key}
        for args in (
            ["status", "job_nope"],
            ["cancel", "job_nope"],
            ["retry", "job_nope"],
            ["results", "job_nope", "-o", str(tmp_path / "x.csv")],
        ):
            out = _sluice(args, env)
            _one_or_two_lines(out, "HTTP 404 not_found", "jobs` and", code=1)
        assert not (tmp_path / "x.csv").exists()
        wrong = {**env, "SLUICE_API_KEY": "sk-not-a-key-of-this-api"}
        out = _sluice(["status", "job_nope"], wrong)
        _one_or_two_lines(out, "the API refused the key", "keys create", code=1)

        data = tmp_path / "in.jsonl"
        data.write_text("".join(json.dumps({"id": i, "text": f"t{i}"}) + "\n" for i in range(5)))
        bad_json = tmp_path / "bad.jsonl"
        bad_json.write_text('{"input": "fine"}\n{"input": "broken\n')
        bad_item = tmp_path / "item.jsonl"
        bad_item.write_text('{"input": "fine"}\n{"input": 42}\n')
        nothing = tmp_path / "none.jsonl"
        nothing.write_text('{"input": 1}\n{"input": 2}\n')
        submit = ["submit", str(data), "--model", "tiny-embed"]
        for args, wanted in (
            (["submit", str(data), "--model", "nope"], ["unknown model 'nope'", "tiny-embed"]),
            ([*submit, "--params", "{"], ["--params is not JSON"]),
            ([*submit, "--params", '{"dimension": 8}'], ["params.dimension", "embed model"]),
            ([*submit, "--params", '{"dimensions": 4096}'], ["gives 32 dimensions"]),
            (["submit", str(bad_json), "--model", "tiny-embed"], ["bad.jsonl:2: not valid JSON"]),
            (["submit", str(bad_item), "--model", "tiny-embed"], ["item.jsonl:2: invalid_input"]),
            (
                ["submit", str(nothing), "--model", "tiny-embed", "--on-invalid", "skip"],
                ["none.jsonl:1: invalid_input"],
            ),
        ):
            out = _sluice(args, env)
            _one_or_two_lines(out, *wanted, code=2)
        # None of them uploaded a byte: no file is left behind.
        assert stack.http.get("/v1/files").json()["data"] == []
    finally:
        stack.close()
