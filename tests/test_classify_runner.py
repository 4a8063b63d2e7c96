"""The classify runner against transformers' text-classification pipeline (tiny models)."""

from pathlib import Path

import pytest

from core.contracts.params import ClassifyParams, check_input
from core.contracts.spec import load_registry
from models.classify import ClassifyRunner
from tests.tiny_models import bench_texts


@pytest.fixture(scope="module")
def registry(registry_file: Path):
    return load_registry(registry_file)


@pytest.fixture(scope="module")
def single(registry) -> ClassifyRunner:
    return ClassifyRunner(registry["tiny-classify"])


@pytest.fixture(scope="module")
def multi(registry) -> ClassifyRunner:
    return ClassifyRunner(registry["tiny-multilabel"])


def _pipeline(runner: ClassifyRunner):
    from transformers import pipeline

    return pipeline("text-classification", model=runner.spec.resolved_source(), device="cpu")


def _as_dict(scores):
    return {s["label"]: s["score"] for s in scores}


@pytest.mark.parametrize("which", ["single", "multi"])
def test_scores_equal_the_pipeline(which, request):
    runner = request.getfixturevalue(which)
    texts = bench_texts(60, seed=8)
    ours = runner.run(texts, ClassifyParams(top_k="all"))
    ref = _pipeline(runner)(texts, top_k=None, truncation=True, max_length=runner.max_length)
    for got, want in zip(ours, ref, strict=True):
        assert got.ok
        assert [s["label"] for s in got.output] == [s["label"] for s in want]  # same order
        mine, theirs = _as_dict(got.output), _as_dict(want)
        assert all(abs(mine[k] - theirs[k]) < 1e-4 for k in theirs)
    if which == "single":  # softmax: a distribution
        assert all(abs(sum(_as_dict(r.output).values()) - 1) < 1e-5 for r in ours)
    else:  # sigmoid: independent scores
        assert any(abs(sum(_as_dict(r.output).values()) - 1) > 0.05 for r in ours)


def test_text_pairs_equal_the_pipeline(single):
    pairs = [("the cat sat", "on the mat"), ("a long gloss of a word", "another gloss")]
    ours = single.run([list(p) for p in pairs], ClassifyParams(top_k="all"))
    pipe = _pipeline(single)
    for got, (a, b) in zip(ours, pairs, strict=True):
        want = pipe({"text": a, "text_pair": b}, top_k=None)
        assert all(abs(_as_dict(got.output)[k] - v) < 1e-4 for k, v in _as_dict(want).items())


def test_top_k_and_batch_invariance(single):
    texts = bench_texts(80, seed=9)
    batched = single.run(texts, ClassifyParams(top_k=2))
    assert all(len(r.output) == 2 for r in batched)
    for text, got in zip(texts[:20], batched[:20], strict=True):
        alone = single.run([text], ClassifyParams(top_k=2))[0]
        assert [s["label"] for s in alone.output] == [s["label"] for s in got.output]
        assert all(
            abs(a["score"] - b["score"]) < 1e-4
            for a, b in zip(alone.output, got.output, strict=True)
        )
    assert single.run(["x"], ClassifyParams())[0].output[0]["label"] in single.labels


def test_usage_and_truncation_are_reported(single):
    res = single.run(["short", "word " * 500], ClassifyParams())
    assert res[0].usage["prompt_tokens"] == 3 and not res[0].truncated
    assert res[1].truncated and res[1].usage["prompt_tokens"] == single.max_length
    res = single.run(["word " * 500], ClassifyParams(truncate=False))
    assert res[0].error_code == "input_too_long"


def test_bf16_keeps_the_top_label(registry):
    texts = bench_texts(200, seed=10)
    fp32 = ClassifyRunner(registry["tiny-classify"]).run(texts, ClassifyParams())
    spec = registry["tiny-classify"].model_copy(update={"dtype": "bfloat16"})
    bf16 = ClassifyRunner(spec).run(texts, ClassifyParams())
    pairs = zip(fp32, bf16, strict=True)
    agree = sum(a.output[0]["label"] == b.output[0]["label"] for a, b in pairs)
    # Random tiny weights leave near-ties that bf16 may flip; a real model has margins.
    assert agree >= 0.97 * len(texts)


def test_input_shapes():
    assert check_input("classify", "a") == "a"
    assert check_input("classify", {"text": "a", "text_pair": "b"}) == ["a", "b"]
    assert check_input("classify", {"text": "a"}) == "a"
    for bad in ({"text": 1}, {"txt": "a"}, {"text": "a", "text_pair": 2}, 5, ["a", "b"]):
        with pytest.raises(ValueError):
            check_input("classify", bad)
    with pytest.raises(ValueError):
        check_input("embed", {"text": "a"})


def test_a_text_gives_the_same_result_beside_a_pair(single):
    """A text in a chunk with text pairs is encoded alone, not as (text, ""), which would
    add a second [SEP] and change its scores and token count."""
    texts = bench_texts(6, seed=10)
    alone = single.run(texts, ClassifyParams(top_k="all"))
    mixed = single.run([*texts, ["the cat sat", "on the mat"]], ClassifyParams(top_k="all"))
    for a, b in zip(alone, mixed[:-1], strict=True):
        assert a.usage == b.usage
        assert all(
            abs(x["score"] - y["score"]) < 1e-6 for x, y in zip(a.output, b.output, strict=True)
        )
