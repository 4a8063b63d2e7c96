"""The embed runner against sentence-transformers, and its params."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.contracts.params import EmbedParams
from core.contracts.spec import DEFAULT_MODELS_FILE, load_registry
from models.embed import EmbedRunner
from models.results import Cancelled
from tests.tiny_models import bench_texts


@pytest.fixture(scope="module")
def minilm() -> EmbedRunner:
    # fp32: the reference comparisons below are exact; bf16 is checked against this.
    spec = load_registry(DEFAULT_MODELS_FILE)["all-minilm-l6-v2"]
    return EmbedRunner(spec.model_copy(update={"dtype": "float32"}))


@pytest.fixture(scope="module")
def tiny(registry_file: Path) -> EmbedRunner:
    return EmbedRunner(load_registry(registry_file)["tiny-embed"])


def _vectors(results):
    assert all(r.ok for r in results)
    return np.stack([r.output for r in results])


def test_equals_sentence_transformers_on_bench_corpora(minilm):
    from sentence_transformers import SentenceTransformer

    texts = bench_texts(500, seed=7)
    ours = _vectors(minilm.run(texts, EmbedParams()))
    st = SentenceTransformer(minilm.spec.resolved_source(), device="cpu")
    assert st.max_seq_length == minilm.max_length
    ref = st.encode(texts, batch_size=32, normalize_embeddings=False)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cos = (ours * ref).sum(1)
    assert ours.shape == (500, 384)
    assert cos.min() >= 0.9999, cos.min()


def test_batch_invariance(tiny):
    texts = bench_texts(120, seed=2)
    batched = _vectors(tiny.run(texts, EmbedParams()))
    single = np.stack([_vectors(tiny.run([t], EmbedParams()))[0] for t in texts])
    assert np.abs(batched - single).max() < 1e-4


def test_normalize_and_dimensions(tiny):
    texts = ["a short one", "another somewhat longer sentence for the test"]
    raw = _vectors(tiny.run(texts, EmbedParams(normalize=False)))
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    cut = _vectors(tiny.run(texts, EmbedParams(dimensions=8)))
    assert cut.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, rtol=1e-5)
    expected = raw[:, :8] / np.linalg.norm(raw[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-5)


def test_truncate_false_fails_only_the_long_item(tiny):
    long_text = "word " * 400
    res = tiny.run(["fine", long_text], EmbedParams(truncate=False))
    assert res[0].ok
    assert res[1].error_code == "input_too_long" and "128" in res[1].error_message
    res = tiny.run(["fine", long_text], EmbedParams())
    assert res[0].ok and res[1].ok


def test_cancel_between_micro_batches(tiny):
    texts = bench_texts(400, seed=3)
    with pytest.raises(Cancelled):
        tiny.run(texts, EmbedParams(), should_stop=lambda: True)


def test_bf16_stays_faithful_to_fp32(minilm):
    texts = bench_texts(500, seed=13)
    assert minilm.dtype == torch.float32
    fp32 = _vectors(minilm.run(texts, EmbedParams()))
    spec = minilm.spec.model_copy(update={"dtype": "bfloat16"})
    bf16_runner = EmbedRunner(spec)
    assert bf16_runner.dtype == torch.bfloat16
    bf16 = _vectors(bf16_runner.run(texts, EmbedParams()))
    cos = (fp32 * bf16).sum(1)
    assert cos.min() >= 0.999, cos.min()


def test_int8_quantizes_linear_layers_and_stays_close(minilm):
    spec = minilm.spec.model_copy(update={"quantize": "int8"})
    runner = EmbedRunner(spec)
    kinds = {type(m).__module__ for m in runner.model.modules()}
    assert any("quantized" in k for k in kinds)
    texts = bench_texts(100, seed=14)
    cos = (
        _vectors(runner.run(texts, EmbedParams())) * _vectors(minilm.run(texts, EmbedParams()))
    ).sum(1)
    assert cos.mean() > 0.9  # measurably lossy, which is why it is never on by default


def test_token_counts_from_the_api_give_the_same_results(tiny, monkeypatch):
    import models.encoder
    from core.contracts.token_counts import counter_for

    # a CPU to spare beside torch's threads: the runner plans from the API's counts
    monkeypatch.setattr(models.encoder, "usable_cpus", lambda: torch.get_num_threads() + 1)

    texts = [*bench_texts(150, seed=17), "word " * 300]
    counts = counter_for(tiny.spec)(texts)
    assert counts[-1] == tiny.spec.max_length + 1
    for params in (EmbedParams(), EmbedParams(truncate=False)):
        plain = tiny.run(texts, params)
        ahead = tiny.run(texts, params, token_counts=counts)
        # The API's counts stop at max_length + 1; the too-long message still gives the
        # input's real length.
        assert [(r.ok, r.error_code, r.error_message, r.usage, r.truncated) for r in plain] == [
            (r.ok, r.error_code, r.error_message, r.usage, r.truncated) for r in ahead
        ]
        assert (
            np.abs(
                _vectors([r for r in plain if r.ok]) - _vectors([r for r in ahead if r.ok])
            ).max()
            < 1e-5
        )
    assert ahead[-1].error_code == "input_too_long"


def test_next_batch_is_tokenised_while_the_current_one_runs(registry_file, monkeypatch):
    import threading
    import time

    import models.encoder
    from core.contracts.token_counts import counter_for

    # a CPU to spare beside torch's threads (as beside a GPU): tokenising overlaps
    monkeypatch.setattr(models.encoder, "usable_cpus", lambda: torch.get_num_threads() + 1)
    spec = load_registry(registry_file)["tiny-embed"].model_copy(update={"max_batch_tokens": 256})
    runner = EmbedRunner(spec)
    texts = bench_texts(200, seed=18)
    events: list[tuple[str, float, int, str]] = []
    tokenize, forward = runner.tokenize, runner.forward

    def logged_tokenize(items, truncate, details=False):
        events.append(("tok", time.perf_counter(), len(items), threading.current_thread().name))
        return tokenize(items, truncate, details)

    def slow_forward(batch, params):
        events.append(("fwd-start", time.perf_counter(), 0, ""))
        time.sleep(0.02)
        out = forward(batch, params)
        events.append(("fwd-end", time.perf_counter(), 0, ""))
        return out

    runner.tokenize, runner.forward = logged_tokenize, slow_forward
    results = runner.run(texts, EmbedParams(), token_counts=counter_for(spec)(texts))
    assert all(r.ok for r in results)
    toks = [e for e in events if e[0] == "tok"]
    assert len(toks) > 3 and max(e[2] for e in toks) < len(texts)  # per batch, not per chunk
    assert all(e[3].startswith("tokenize") for e in toks)  # on the look-ahead thread
    # Some batch's tokenisation began while the model was still busy with the one before.
    spans = list(
        zip(
            [e[1] for e in events if e[0] == "fwd-start"],
            [e[1] for e in events if e[0] == "fwd-end"],
            strict=True,
        )
    )
    assert any(start < t[1] < end for t in toks for start, end in spans)


def test_without_a_spare_core_the_chunk_is_tokenised_first_in_one_call(tiny, monkeypatch):
    import threading

    import models.encoder
    from core.contracts.token_counts import counter_for

    monkeypatch.setattr(models.encoder, "usable_cpus", lambda: torch.get_num_threads())
    texts = bench_texts(200, seed=19)
    calls: list[tuple[int, str]] = []
    tokenize = tiny.tokenize

    def logged_tokenize(items, truncate, details=False):
        calls.append((len(items), threading.current_thread().name))
        return tokenize(items, truncate, details)

    monkeypatch.setattr(tiny, "tokenize", logged_tokenize)
    ahead = tiny.run(texts, EmbedParams(), token_counts=counter_for(tiny.spec)(texts))
    assert calls == [(len(texts), threading.current_thread().name)]
    monkeypatch.undo()
    plain = tiny.run(texts, EmbedParams())
    assert np.abs(_vectors(plain) - _vectors(ahead)).max() < 1e-5


def test_cpu_plan_prices_each_batch_and_a_gpu_fills_them(tiny, monkeypatch):
    from models.planner import padding_efficiency, plan_batches

    lengths = [100] * 10 + [10] * 40
    monkeypatch.setattr(tiny.executor, "max_batch_tokens", 5000)
    cpu_plan = tiny.plan(lengths)
    assert cpu_plan == plan_batches(lengths, 5000, overhead_tokens=5000 // 64)
    assert len(cpu_plan) == 2  # the short items are not padded to 100 tokens
    monkeypatch.setattr(tiny, "device", torch.device("cuda", 0))  # only the plan reads it
    assert tiny.plan(lengths) == plan_batches(lengths, 5000) == [list(range(50))]
    assert padding_efficiency(lengths, cpu_plan) == 1.0
