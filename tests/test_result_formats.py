"""Result downloads: the JSONL/CSV/Parquet encoder on plain lines, then the route and the
CLI on both databases, with chunks completed through the store as a worker would."""

import csv
import io
import time

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cli.client
from api.result_formats import encode_results
from cli.main import app as cli_app
from core.codec import pack_lines
from core.db import write_session
from core.result_lines import error_line, is_failure, result_line
from core.store.chunk_leases import complete_chunk, start_chunk
from core.store.dispatch import dispatch_chunks

TAIL = ["prompt_tokens", "completion_tokens", "truncated", "error_code", "error_message"]


def _vector(i, dims=4):
    return [i + k / 4 for k in range(dims)]  # exact in float32


def _embed_line(i, dims=4):
    if i % 3 == 1:
        return error_line(i, f"c{i}", "input_too_long", f'item {i}, "too" long')
    usage = {"prompt_tokens": 10 + i, "completion_tokens": 0}
    return result_line(i, f"c{i}", _vector(i, dims), usage, truncated=i == 3)


def _classify_line(i):
    if i == 1:
        return error_line(i, None, "invalid_input", "bad")
    out = [{"label": "positive", "score": 0.75}, {"label": "negative", "score": 0.25}]
    return result_line(i, f"c{i}", out, {"prompt_tokens": 5, "completion_tokens": 0})


TRICKY = 'says "hi", then\nleaves; ünïcode, and "error":{"code":"x"}'


def _generate_line(i):
    if i == 2:
        return error_line(i, f"c{i}", "input_too_long", "prompt has 300 tokens")
    out = {"text": TRICKY if i == 0 else f"text {i}", "finish_reason": "stop"}
    return result_line(i, f"c{i}", out, {"prompt_tokens": 7, "completion_tokens": 3 + i})


def _blocks(lines, per_block=2):
    """Lines joined into blocks, as stream_results yields them."""
    joined = [line + b"\n" for line in lines]
    return [b"".join(joined[k : k + per_block]) for k in range(0, len(joined), per_block)]


def _parquet(data):
    # use_threads=False: pyarrow's threaded reader can abort the interpreter at exit here
    f = pq.ParquetFile(io.BytesIO(data))
    return f, f.read(use_threads=False)


def _csv(data):
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def _encode(lines, **kw):
    return b"".join(encode_results(_blocks(lines), **kw))


def test_embed_parquet_is_fixed_size_float32_with_nulls_for_failures():
    lines = [_embed_line(i) for i in range(10)]
    _, table = _parquet(_encode(lines, fmt="parquet", task="embed", dimensions=4))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 4)
    assert table.schema.names == ["index", "custom_id", "embedding", *TAIL]
    rows = table.to_pylist()
    assert [r["index"] for r in rows] == list(range(10))
    assert rows[0] == {
        "index": 0,
        "custom_id": "c0",
        "embedding": [0.0, 0.25, 0.5, 0.75],
        "prompt_tokens": 10,
        "completion_tokens": 0,
        "truncated": False,
        "error_code": None,
        "error_message": None,
    }
    assert rows[3]["truncated"] is True and rows[3]["embedding"] == _vector(3)
    assert rows[4] == {
        "index": 4,
        "custom_id": "c4",
        "embedding": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "truncated": None,
        "error_code": "input_too_long",
        "error_message": 'item 4, "too" long',
    }
    assert table.column("embedding").null_count == 3


def test_parquet_streams_row_groups_as_blocks_arrive():
    lines = [_embed_line(i, dims=8) for i in range(25)]
    blocks = _blocks(lines, per_block=3)
    # A line cut across two blocks is joined again.
    blocks[1], blocks[2] = blocks[1][:-20], blocks[1][-20:] + blocks[2]
    pulled = []

    def source():
        for block in blocks:
            pulled.append(block)
            yield block

    stream = encode_results(source(), fmt="parquet", task="embed", dimensions=8, row_group_rows=4)
    first = next(stream)
    assert first and len(pulled) < len(blocks)  # bytes go out before the input is read
    f, table = _parquet(first + b"".join(stream))
    assert f.metadata.num_row_groups == 7  # 25 rows, 4 a group
    assert table.column("index").to_pylist() == list(range(25))
    got = table.column("embedding").to_pylist()
    assert got[24] == _vector(24, 8) and got[22] is None


def test_long_lines_close_row_groups_early(monkeypatch):
    monkeypatch.setattr("api.result_formats.ROW_GROUP_BYTES", 250)
    lines = [_generate_line(i) for i in range(6)]  # about 130 bytes each
    f, table = _parquet(_encode(lines, fmt="parquet", task="generate"))
    assert f.metadata.num_row_groups == 3 and table.column("index").to_pylist() == list(range(6))


def test_embed_width_is_taken_from_the_data_when_not_given():
    _, table = _parquet(_encode([_embed_line(i) for i in range(3)], fmt="parquet", task="embed"))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 4)
    failed_first = [_embed_line(1), _embed_line(2)]  # no width known when the schema is fixed
    data = b"".join(
        encode_results(_blocks(failed_first), fmt="parquet", task="embed", row_group_rows=1)
    )
    _, table = _parquet(data)
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    assert table.column("embedding").to_pylist() == [None, _vector(2)]
    with pytest.raises(ValueError, match="3 values, not 4"):
        _encode(
            [_embed_line(0), result_line(2, "c2", [1.0, 2.0, 3.0])], fmt="parquet", task="embed"
        )


def test_classify_and_generate_parquet():
    _, table = _parquet(
        _encode([_classify_line(i) for i in range(3)], fmt="parquet", task="classify")
    )
    assert table.schema.field("labels").type == pa.list_(pa.string())
    assert table.schema.field("scores").type == pa.list_(pa.float32())
    both = ["positive", "negative"]
    assert table.column("labels").to_pylist() == [both, None, both]
    assert table.column("scores").to_pylist()[2] == [0.75, 0.25]
    assert table.column("custom_id").to_pylist() == ["c0", None, "c2"]
    _, table = _parquet(
        _encode([_generate_line(i) for i in range(3)], fmt="parquet", task="generate")
    )
    assert table.schema.names == ["index", "custom_id", "text", "finish_reason", *TAIL]
    assert table.column("text").to_pylist() == [TRICKY, "text 1", None]
    assert table.column("finish_reason").to_pylist() == ["stop", "stop", None]
    assert table.column("completion_tokens").to_pylist() == [3, 4, None]
    assert table.column("error_code").to_pylist() == [None, None, "input_too_long"]


TOKENS = [
    {"token": "good", "segment": 0, "start": 0, "end": 4, "score": 0.5},
    {"token": "##s", "segment": 1, "start": 4, "end": 5, "score": -0.25},
]
GRID = [[0.5, -0.25], [0.125, 0.0]]


def _explained_line(i, image=False):
    """A classify result with its explanation (a grid for an image, else tokens)."""
    if i == 1:
        return error_line(i, f"c{i}", "inference_error", "boom")
    out = [{"label": "positive", "score": 0.75}, {"label": "negative", "score": 0.25}]
    why = {"target": "positive", "sum": 0.375 + i, "delta": 0.375 + i}
    why |= {"grid": GRID} if image else {"tokens": TOKENS}
    usage = None if image else {"prompt_tokens": 5, "completion_tokens": 0}
    return result_line(i, f"c{i}", out, usage, explanation=why)


def test_explained_parquet_holds_attributions_typed_and_csv_their_scalars():
    lines = [_explained_line(i) for i in range(3)]
    _, table = _parquet(_encode(lines, fmt="parquet", task="classify", explained=True))
    scalars = ["explain_target", "explain_sum", "explain_delta"]
    assert table.schema.names == ["index", "custom_id", "labels", "scores", *scalars,
                                  "explain_tokens", *TAIL]  # fmt: skip
    assert table.schema.field("explain_tokens").type.value_type.field("score").type == pa.float32()
    assert table.column("explain_tokens").to_pylist() == [TOKENS, None, TOKENS]
    assert table.column("explain_sum").to_pylist() == [0.375, None, 2.375]
    assert table.column("explain_target").to_pylist() == ["positive", None, "positive"]
    images = [_explained_line(i, image=True) for i in range(3)]
    _, table = _parquet(_encode(images, fmt="parquet", task="classify_image", explained=True))
    assert table.schema.field("explain_grid").type == pa.list_(pa.list_(pa.float32()))
    assert table.column("explain_grid").to_pylist() == [GRID, None, GRID]
    for task, source in (("classify", lines), ("classify_image", images)):
        rows = _csv(_encode(source, fmt="csv", task=task, explained=True))
        assert list(rows[0])[2:9] == ["label", "score", "labels", "scores", *scalars]
        assert (rows[2]["explain_target"], rows[2]["explain_delta"]) == ("positive", "2.375")
        assert rows[1]["explain_sum"] == "" and rows[1]["error_code"] == "inference_error"
    plain = _parquet(_encode(lines, fmt="parquet", task="classify"))[1]  # a job without explain
    assert "explain_sum" not in plain.schema.names


def test_csv_columns_and_quoting_per_task():
    rows = _csv(_encode([_embed_line(i) for i in range(3)], fmt="csv", task="embed"))
    assert list(rows[0]) == ["index", "custom_id", "embedding", *TAIL]
    assert orjson.loads(rows[0]["embedding"]) == _vector(0)
    assert rows[0]["truncated"] == "false" and rows[0]["prompt_tokens"] == "10"
    assert rows[1]["embedding"] == "" and rows[1]["error_message"] == 'item 1, "too" long'
    rows = _csv(_encode([_classify_line(i) for i in range(3)], fmt="csv", task="classify"))
    assert list(rows[0])[2:6] == ["label", "score", "labels", "scores"]
    assert (rows[0]["label"], rows[0]["score"]) == ("positive", "0.75")
    assert orjson.loads(rows[2]["labels"]) == ["positive", "negative"]
    assert orjson.loads(rows[2]["scores"]) == [0.75, 0.25]
    assert rows[1]["label"] == "" and rows[1]["error_code"] == "invalid_input"
    rows = _csv(_encode([_generate_line(i) for i in range(4)], fmt="csv", task="generate"))
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[0]["text"] == TRICKY and rows[0]["finish_reason"] == "stop"
    assert rows[2]["text"] == "" and rows[2]["error_message"] == "prompt has 300 tokens"


def test_only_failed_in_every_format():
    lines = [_generate_line(i) for i in range(4)]  # item 0's text holds the error mark
    assert not is_failure(lines[0]) and is_failure(lines[2])
    assert not is_failure(b'{"custom_id":null,"index":0,"output":{"error":{"code":"x"}}}')
    jsonl = _encode(lines, fmt="jsonl", task="generate", only_failed=True)
    assert jsonl == lines[2] + b"\n"
    rows = _csv(_encode(lines, fmt="csv", task="generate", only_failed=True))
    assert [(r["index"], r["error_code"]) for r in rows] == [("2", "input_too_long")]
    data = _encode(lines, fmt="parquet", task="generate", only_failed=True)
    assert _parquet(data)[1].column("index").to_pylist() == [2]


def test_jsonl_passes_blocks_through_unchanged():
    blocks = _blocks([_embed_line(i) for i in range(5)])
    assert list(encode_results(blocks, fmt="jsonl", task="embed")) == blocks
    with pytest.raises(ValueError, match="unknown result format"):
        encode_results(blocks, fmt="xml", task="embed")


@pytest.mark.parametrize("task", ["embed", "classify", "generate"])
def test_empty_results_are_valid_files(task):
    f, table = _parquet(b"".join(encode_results([], fmt="parquet", task=task, dimensions=16)))
    assert table.num_rows == 0 and f.metadata.num_row_groups == 0
    assert table.schema.names[:2] == ["index", "custom_id"] and table.schema.names[-5:] == TAIL
    if task == "embed":
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    header = b"".join(encode_results([], fmt="csv", task=task)).decode()
    assert header.count("\n") == 1 and header.startswith("index,custom_id,")
    assert b"".join(encode_results([], fmt="jsonl", task=task)) == b""
    assert b"".join(encode_results([b""], fmt="jsonl", task=task, only_failed=True)) == b""


# --- the route and the CLI, on both databases ---------------------------------------------


def _run_chunks(db, model, line_for, limit=None):
    """Dispatch, start and complete chunks as a worker would; the items completed."""
    done: list[int] = []
    chunks = 0
    while limit is None or chunks < limit:
        with write_session(db) as s:
            got = dispatch_chunks(session=s, model=model, limit=1, now=time.time(), queue_lease=60)
        if not got:
            break
        with write_session(db) as s:
            work = start_chunk(
                session=s,
                chunk_id=got[0].chunk_id,
                token=got[0].token,
                worker="w",
                now=time.time(),
                lease=60,
            )
        lines = [line_for(i) for i, _, _ in work.records]
        failed = sum(map(is_failure, lines))
        with write_session(db) as s:
            assert complete_chunk(
                session=s,
                work=work,
                outputs=pack_lines(lines),
                completed=len(lines) - failed,
                failed=failed,
                now=time.time(),
                compute_seconds=0.1,
            )
        chunks += 1
        done.extend(i for i, _, _ in work.records)
    return sorted(done)


def _submit(api, headers, model, n, params=None):
    inputs = [{"custom_id": f"c{i}", "input": f"text {i}"} for i in range(n)]
    body = {"model": model, "params": params or {}, "inputs": inputs}
    r = api.post("/v1/jobs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_route_serves_a_finished_embed_job_in_each_format(api, alice, cfg):
    job_id = _submit(api, alice, "tiny-embed", 7, params={"dimensions": 16})
    _run_chunks(cfg.database_url, "tiny-embed", lambda i: _embed_line(i, dims=16))
    url = f"/v1/jobs/{job_id}/results"
    r = api.get(url, params={"format": "parquet"}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"] == f'attachment; filename="{job_id}.parquet"'
    assert r.headers["x-sluice-job-status"] == "completed"
    _, table = _parquet(r.content)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)  # params win
    assert table.column("index").to_pylist() == list(range(7))
    assert table.column("embedding").to_pylist()[6] == _vector(6, 16)
    assert table.column("error_code").to_pylist().count("input_too_long") == 2
    r = api.get(url, params={"format": "csv", "only": "failed"}, headers=alice)
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].endswith(f'filename="{job_id}.csv"')
    assert [(row["index"], row["custom_id"]) for row in _csv(r.content)] == [
        ("1", "c1"),
        ("4", "c4"),
    ]
    r = api.get(url, params={"only": "failed"}, headers=alice)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(x)["index"] for x in r.content.splitlines()] == [1, 4]
    assert len(api.get(url, headers=alice).content.splitlines()) == 7


def test_route_serves_classify_csv_and_partial_results_of_a_running_job(api, alice, cfg):
    job_id = _submit(api, alice, "tiny-classify", 250)  # chunks of up to 100
    done = _run_chunks(cfg.database_url, "tiny-classify", _classify_line, limit=1)
    assert 0 < len(done) < 250
    r = api.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}, headers=alice)
    assert r.status_code == 200 and r.headers["x-sluice-job-status"] == "in_progress"
    rows = _csv(r.content)
    assert [int(row["index"]) for row in rows] == done  # the finished chunk, in input order
    assert all(row["label"] == "positive" for row in rows if row["index"] != "1")


def test_route_serves_explanations_of_an_explained_job(api, alice, cfg):
    job_id = _submit(api, alice, "tiny-classify", 3, params={"explain": {"steps": 8}})
    _run_chunks(cfg.database_url, "tiny-classify", _explained_line)
    url = f"/v1/jobs/{job_id}/results"
    table = _parquet(api.get(url, params={"format": "parquet"}, headers=alice).content)[1]
    assert table.column("explain_tokens").to_pylist() == [TOKENS, None, TOKENS]
    rows = _csv(api.get(url, params={"format": "csv"}, headers=alice).content)
    assert [r["explain_sum"] for r in rows] == ["0.375", "", "2.375"]
    lines = api.get(url, headers=alice).content.splitlines()
    assert orjson.loads(lines[2])["explanation"]["tokens"] == TOKENS


@pytest.mark.parametrize(
    "params,param",
    [({"format": "xml"}, "format"), ({"only": "done"}, "only"), ({"format": ""}, "format")],
)
def test_route_rejects_bad_format_or_only_with_a_code(api, alice, params, param):
    job_id = _submit(api, alice, "tiny-embed", 2)
    r = api.get(f"/v1/jobs/{job_id}/results", params=params, headers=alice)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request" and r.json()["error"]["param"] == param


# The CLI's client passes timeouts, which TestClient (standing in for the network) warns of.
@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
def test_cli_format_follows_the_output_suffix(api, alice, cfg, tmp_path, monkeypatch):
    job_id = _submit(api, alice, "tiny-causal", 5, params={"max_new_tokens": 4})
    _run_chunks(cfg.database_url, "tiny-causal", _generate_line)
    api.headers.update(alice)
    client = cli.client.Client(base_url="http://testserver", http_client=api)
    monkeypatch.setattr(cli.client, "Client", lambda: client)
    runner = CliRunner()
    for name in ("out.parquet", "out.csv", "failed.jsonl"):
        args = ["results", job_id, "-o", str(tmp_path / name)]
        out = runner.invoke(cli_app, [*args, "--only-failed"] if name[0] == "f" else args)
        assert out.exit_code == 0, out.output
    _, table = _parquet((tmp_path / "out.parquet").read_bytes())
    assert table.column("text").to_pylist() == [TRICKY, "text 1", None, "text 3", "text 4"]
    rows = _csv((tmp_path / "out.csv").read_bytes())
    assert [row["finish_reason"] for row in rows] == ["stop", "stop", "", "stop", "stop"]
    failed = (tmp_path / "failed.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["index"] for x in failed] == [2]
    out = runner.invoke(cli_app, ["results", "job_nope", "-o", str(tmp_path / "x.csv")])
    assert out.exit_code == 1 and not (tmp_path / "x.csv").exists()
