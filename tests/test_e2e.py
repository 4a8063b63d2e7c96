"""End to end: real API and worker processes, real Redis, SQLite and PostgreSQL."""

import numpy as np
import orjson
import pytest
from sqlalchemy import select

from core import states
from core.db import read_session
from core.tables import Chunk
from tests.stack import TERMINAL
from tests.tiny_models import bench_texts

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' vectors for the e2e texts: the reference every line is held to."""
    from sentence_transformers import SentenceTransformer

    from core.contracts.spec import DEFAULT_MODELS_FILE, load_registry

    texts = bench_texts(700, seed=11)
    st = SentenceTransformer(
        load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"].resolved_source(), device="cpu"
    )
    return texts, st.encode(texts, batch_size=32, normalize_embeddings=True)


def _check_lines(lines, texts, ref=None, dim=None):
    assert len(lines) == len(texts)
    for i, raw in enumerate(lines):
        line = orjson.loads(raw)
        assert {"custom_id", "index", "output", "usage"} <= set(line), line
        assert set(line) <= {"custom_id", "index", "output", "usage", "truncated"}, line
        assert line["usage"]["prompt_tokens"] > 0 and line["usage"]["completion_tokens"] == 0
        assert line["index"] == i and line["custom_id"] == f"item-{i}"
        vec = np.asarray(line["output"], dtype=np.float32)
        if dim:
            assert vec.shape == (dim,)
        if ref is not None:
            assert float(vec @ ref[i]) >= 0.9999, (i, float(vec @ ref[i]))


def test_embedding_job_end_to_end(stack, reference):
    texts, ref = reference
    stack.start_worker("all-minilm-l6-v2")
    job = stack.submit(texts, "all-minilm-l6-v2", metadata={"run": "e2e"})
    seen_partial = False
    while job["status"] not in TERMINAL:
        job = stack.job(job["id"], wait=2)
        if job["status"] == "in_progress" and 0 < job["counts"]["completed"] < len(texts):
            partial = [orjson.loads(x) for x in stack.results(job["id"])]
            idx = [p["index"] for p in partial]
            assert idx == sorted(idx) and len(idx) >= job["counts"]["completed"] - 256
            seen_partial = True
    assert job["status"] == "completed", job
    assert job["counts"] == {"total": 700, "completed": 700, "failed": 0, "cancelled": 0}
    assert job["progress"] == 1.0 and job["throughput"] > 0 and job["finished_at"]
    assert seen_partial or len(texts) <= 256
    _check_lines(stack.results(job["id"]), texts, ref=ref, dim=384)


def test_cancel_a_running_job(stack, cfg):
    texts = bench_texts(20000, seed=5)
    stack.start_worker("tiny-embed")
    job = stack.submit(texts, "tiny-embed")
    stack.wait_until(job["id"], lambda j: j["counts"]["completed"] > 0)
    r = stack.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] in ("cancelling", "cancelled")
    job = stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL, timeout=60)
    assert job["status"] == "cancelled"
    assert 0 < job["counts"]["completed"] < len(texts)
    lines = [orjson.loads(x) for x in stack.results(job["id"])]
    assert len(lines) == job["counts"]["completed"]
    assert [x["index"] for x in lines] == sorted(x["index"] for x in lines)
    with read_session(cfg.database_url) as s:
        open_chunks = s.scalars(
            select(Chunk.id).where(
                Chunk.job_id == job["id"], Chunk.status.notin_(states.CHUNK_TERMINAL)
            )
        ).all()
    assert open_chunks == []


def test_worker_sigkill_mid_job_loses_and_duplicates_nothing(stack, cfg):
    texts = bench_texts(12000, seed=9)
    first = stack.start_worker("tiny-embed")
    job = stack.submit(texts, "tiny-embed", params={"dimensions": 16})
    stack.wait_until(job["id"], lambda j: j["counts"]["completed"] >= 1000)
    stack.kill(first)
    assert stack.job(job["id"])["status"] == "in_progress"
    stack.start_worker("tiny-embed")
    job = stack.wait_until(job["id"], lambda j: j["status"] in TERMINAL)
    assert job["status"] == "completed", job
    assert job["counts"] == {"total": 12000, "completed": 12000, "failed": 0, "cancelled": 0}
    _check_lines(stack.results(job["id"]), texts, dim=16)
    with read_session(cfg.database_url) as s:
        attempts = s.scalars(select(Chunk.attempts).where(Chunk.job_id == job["id"])).all()
    # The chunk running when the worker died (if one was: the kill may fall between two)
    # ran again; none needed more than that.
    assert min(attempts) == 1 and max(attempts) <= 2


def test_classify_job_end_to_end(stack):
    texts = bench_texts(500, seed=12)
    stack.start_worker("tiny-classify")
    inputs = [
        {"custom_id": f"item-{i}", "input": t if i % 2 else {"text": t, "text_pair": "x"}}
        for i, t in enumerate(texts)
    ]
    job, lines = stack.run_to_end("tiny-classify", inputs, {"top_k": 2})
    assert job["counts"] == {"total": 500, "completed": 500, "failed": 0, "cancelled": 0}
    assert len(lines) == 500
    for line in lines:
        labels = [s["label"] for s in line["output"]]
        assert len(labels) == 2 and set(labels) <= {"negative", "neutral", "positive"}
        assert line["output"][0]["score"] >= line["output"][1]["score"]
        assert line["usage"]["prompt_tokens"] > 0


def test_generate_job_end_to_end(stack):
    stack.start_worker("tiny-causal")
    prompts = [t[:120] for t in bench_texts(120, seed=16)]
    inputs = [
        {
            "custom_id": f"item-{i}",
            "input": p if i % 3 else {"messages": [{"role": "user", "content": p}], "seed": i},
        }
        for i, p in enumerate(prompts)
    ]
    params = {"max_new_tokens": 8, "temperature": 0.8, "seed": 3, "stop": ["\n"]}
    job, lines = stack.run_to_end("tiny-causal", inputs, params)
    assert job["counts"] == {"total": 120, "completed": 120, "failed": 0, "cancelled": 0}
    assert len(lines) == 120
    for line in lines:
        assert set(line["output"]) == {"text", "finish_reason"}
        assert "\n" not in line["output"]["text"]
        assert line["output"]["finish_reason"] in ("stop", "length")
        assert 0 <= line["usage"]["completion_tokens"] <= 8 < line["usage"]["prompt_tokens"] + 8
