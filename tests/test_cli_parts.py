"""The CLI's pure parts: relative times and sizes, the closing line of a followed job, a
refused file's errors, the tables, the checks submit makes before it uploads, and the
one or two lines an escaped error becomes."""

import gzip
import io
import json

import pytest
from rich.console import Console
from sluice_client import APIConnectionError, NotFoundError

from cli.errors import explain
from cli.follow import error_lines, refused_in_validation, summary_line
from cli.humanize import duration, relative_time, size
from cli.preflight import (
    CHECKED_LINES,
    Refused,
    check_first_lines,
    check_params,
    find_model,
    parse_params,
)
from cli.tables import job_list, job_view, model_list
from core.config import Settings
from core.errors import SchemaOutdated

NOW = 1_700_000_000.0
EMBED = {"id": "minilm", "task": "embed", "dimensions": 384, "max_length": 256, "labels": None}


def _text(renderable) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(renderable)
    return console.file.getvalue()


def test_times_and_sizes_read_like_speech():
    assert relative_time(None) == "-"
    assert relative_time(NOW - 2, NOW) == "just now"
    assert relative_time(NOW - 45, NOW) == "45 s ago"
    assert relative_time(NOW - 200, NOW) == "3 min ago"
    assert relative_time(NOW - 7300, NOW) == "2 h ago"
    assert relative_time(NOW - 86400 * 1.5, NOW) == "1 day ago"
    assert relative_time(NOW + 30 * 86400 - 10, NOW) == "in 29 days"
    assert duration(0.25) == "250 ms" and duration(12.34) == "12.3 s"
    assert duration(245) == "4m 05s" and duration(7800) == "2h 10m"
    assert size(812) == "812 B" and size(1536) == "1.5 KiB" and size(3 << 30) == "3.0 GiB"


def test_the_closing_line_and_a_refused_files_errors():
    job = {"status": "completed", "counts": {"total": 900, "completed": 898, "failed": 2}}
    assert summary_line(job) == "completed: 898 ok, 2 failed"
    job["throughput"] = 300.0
    assert summary_line(job) == "completed: 898 ok, 2 failed in 3.0 s, 300 items/s"
    job["counts"]["cancelled"] = 5  # where the API counts them
    assert summary_line(job).startswith("completed: 898 ok, 2 failed, 5 cancelled in")

    errors = {
        "data": [
            {"line": 100 + i, "code": "invalid_input", "message": "input must be a string"}
            for i in range(10)
        ],
        "invalid_lines": 15,
        "duplicates": 0,
    }
    refused = {"status": "failed", "counts": {"total": 165, "completed": 0, "failed": 0}}
    assert refused_in_validation({**refused, "errors": errors})
    assert not refused_in_validation({**refused, "errors": None})
    ran = {"status": "failed", "counts": {"total": 5, "completed": 0, "failed": 5}}
    assert not refused_in_validation({**ran, "errors": errors})
    lines = error_lines(errors)
    assert len(lines) == 11 and lines[0] == "  line 100: invalid_input: input must be a string"
    assert lines[-1] == "  ... and 5 more"
    assert error_lines(errors, limit=3)[-1] == "  ... and 12 more"
    assert error_lines(None) == [] and error_lines({"data": []}) == []
    empty = {"data": [{"line": None, "code": "empty_file", "message": "no lines"}]}
    assert error_lines(empty) == ["  empty_file: no lines"]


def test_tables_show_relative_times_and_a_job_waiting_for_a_worker():
    job = {
        "id": "job_1",
        "model": "minilm",
        "task": "embed",
        "status": "queued",
        "counts": {"total": 6000, "completed": 1200, "failed": 3},
        "progress": 0.2005,
        "throughput": 410.5,
        "eta_seconds": 11.6,
        "created_at": NOW - 180,
        "started_at": NOW - 3,
        "expires_at": NOW + 30 * 86400,
        "waiting_for_worker": True,
    }
    view = _text(job_view(job, NOW))
    assert "queued (waiting for a worker)" in view
    assert "6,000 items: 1,200 ok, 3 failed (20% done)" in view
    assert "410 items/s" in view and "11.6 s" in view
    assert "3 min ago" in view and "in 30 days" in view and "finished" not in view
    listed = _text(job_list([{**job, "status": "waiting_for_worker"}], NOW))
    assert "waiting_for_worker" in listed and "1,203/6,000" in listed and "3 min ago" in listed
    models = _text(model_list([{**EMBED, "dtype": "float32", "live_workers": 0}]))
    assert "minilm" in models and "384 dims" in models and "256" in models


def test_submit_checks_params_against_the_models_task():
    assert parse_params('{"dimensions": 128}') == {"dimensions": 128}
    for text in ("{", "[1]", '"x"'):
        with pytest.raises(Refused):
            parse_params(text)
    assert find_model([EMBED], "minilm", "sluice") is EMBED
    with pytest.raises(Refused, match="unknown model 'nope'; this API serves: minilm"):
        find_model([EMBED], "nope", "sluice")
    with pytest.raises(Refused, match=r"'minlm' \(did you mean minilm\?\)"):
        find_model([EMBED], "minlm", "sluice")
    check_params(EMBED, {"dimensions": 128, "normalize": False})
    with pytest.raises(Refused, match=r"params\.dimension: Extra inputs"):
        check_params(EMBED, {"dimension": 128})
    with pytest.raises(Refused, match="minilm gives 384 dimensions, asked for 512"):
        check_params(EMBED, {"dimensions": 512})
    generate = {"id": "gpt", "task": "generate", "max_length": 64}
    with pytest.raises(Refused, match="max_new_tokens"):
        check_params(generate, {"max_new_tokens": 64})
    classify = {"id": "sst", "task": "classify", "labels": ["neg", "pos"], "max_length": 64}
    check_params(classify, {"explain": {"target": "pos"}})
    with pytest.raises(Refused, match="no label 'meh'"):
        check_params(classify, {"explain": {"target": "meh"}})


def _jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_submit_reads_the_first_lines_before_it_uploads(tmp_path):
    rows = [{"id": i, "text": f"t{i}"} for i in range(5)] + [{"custom_id": "x", "input": "y"}]
    assert check_first_lines(_jsonl(tmp_path / "a.jsonl.gz", rows, gz=True), "embed") == 6
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"input": "a"}\n\n{"input": "b"\n')
    with pytest.raises(Refused, match=r"bad.jsonl:3: not valid JSON"):
        check_first_lines(bad, "embed")
    mixed = _jsonl(tmp_path / "m.jsonl", [{"input": "a"}, {"input": 1}, {"inpt": "c"}])
    with pytest.raises(Refused, match=r"m.jsonl:2: invalid_input: input must be a string"):
        check_first_lines(mixed, "embed")
    assert check_first_lines(mixed, "embed", skip_invalid=True) == 3  # they fail alone
    with pytest.raises(Refused, match=r"n.jsonl:1: missing_input: .*'inpt'"):
        check_first_lines(_jsonl(tmp_path / "n.jsonl", [{"inpt": 1}]), "embed", skip_invalid=True)
    pairs = [{"input": {"text": "a", "text_pair": "b"}}]
    assert check_first_lines(_jsonl(tmp_path / "p.jsonl", pairs), "classify") == 1
    with pytest.raises(Refused, match="invalid_input"):
        check_first_lines(tmp_path / "p.jsonl", "embed")
    # Only the first lines: one invalid later on is the worker's to report.
    late = [{"input": "ok"}] * CHECKED_LINES + [{"input": 1}]
    assert check_first_lines(_jsonl(tmp_path / "late.jsonl", late), "embed") == CHECKED_LINES
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    with pytest.raises(Refused, match="has no lines"):
        check_first_lines(tmp_path / "empty.jsonl", "embed")
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"input": "a"}\n' * 50)[:40])
    with pytest.raises(Refused, match="cannot read it"):
        check_first_lines(tmp_path / "cut.jsonl.gz", "embed")


def test_an_escaped_error_becomes_a_line_and_a_hint():
    with pytest.raises(Exception) as settings_error:
        Settings(environment="production")
    message, hint, code = explain(settings_error.value)
    assert message == "invalid settings: SLUICE_KEY_PEPPER must be set outside development"
    assert "environment or in .env" in hint and code == 2
    message, hint, code = explain(SchemaOutdated("database schema is at nothing: run `x`"))
    assert message.startswith("schema_outdated: database schema") and code == 1
    message, hint, _ = explain(NotFoundError("no job 'j'", code="not_found", status=404))
    assert message == "HTTP 404 not_found: no job 'j'" and "jobs`" in hint
    message, hint, _ = explain(APIConnectionError("cannot reach http://h:1: refused"))
    assert message == "cannot reach http://h:1: refused" and "api`" in hint
    message, hint, _ = explain(FileNotFoundError(2, "No such file or directory", "in.jsonl"))
    assert message == "in.jsonl: No such file or directory" and hint is None
    message, hint, _ = explain(RuntimeError("boom\nmore"))
    assert message == "unexpected error: RuntimeError: boom" and "--debug" in hint
