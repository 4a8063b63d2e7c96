"""Explanations (integrated gradients) of classify and classify_image: completeness (the
attributions add up to f(input) - f(baseline) for the explained logit), and that the check
can fail; targets; batch invariance; token offsets; grids; OOM back-off."""

from __future__ import annotations

import random
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import torch

from core.contracts.images import ImageLimits, data_url
from core.contracts.params import parse_params
from core.contracts.spec import load_registry
from tests.tiny_images import encode, random_image
from tests.tiny_models import bench_texts

LIMITS = ImageLimits(max_bytes=8 << 20, max_pixels=40_000_000)
PAIRS = [["The cat sat.", "On the mat, twice!"], ["Naïve Café", "déjà vu"]]


@pytest.fixture(scope="module")
def registry(registry_file: Path) -> dict[str, Any]:
    return load_registry(registry_file)


@pytest.fixture(scope="module")
def text(registry: dict[str, Any]) -> Any:
    from models.classify import ClassifyRunner

    return ClassifyRunner(registry["tiny-classify"])


@pytest.fixture(scope="module")
def images(registry: dict[str, Any]) -> dict[str, Any]:
    from models.classify_image import ClassifyImageRunner

    names = ("tiny-vit", "tiny-resnet", "tiny-cnn", "tiny-cnn-script")
    return {name: ClassifyImageRunner(registry[name], limits=LIMITS) for name in names}


def _explain(task: str, **explain: Any) -> Any:
    return parse_params(task, {"top_k": "all", "explain": explain})


def _texts(n: int = 10) -> list[Any]:
    return [*bench_texts(n, seed=21), *PAIRS]


def _images(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [data_url(encode(random_image(rng))) for _ in range(n)]


def _relative_errors(results: list[Any], eps: float) -> list[float]:
    """|sum - delta| / (|delta| + eps) per item."""
    assert all(r.ok for r in results), [r.error_message for r in results if not r.ok]
    return [
        abs(r.explanation["sum"] - r.explanation["delta"]) / (abs(r.explanation["delta"]) + eps)
        for r in results
    ]


# -- text -------------------------------------------------------------------------------


def test_text_attributions_add_up_to_the_logit_difference(text):
    results = text.run(_texts(), _explain("classify", steps=64))
    assert max(_relative_errors(results, eps=1e-8)) <= 0.01
    for r in results:
        tokens = r.explanation["tokens"]
        assert tokens and abs(sum(t["score"] for t in tokens) - r.explanation["sum"]) < 1e-9
        assert r.explanation["target"] == r.output[0]["label"]  # "top"
        assert abs(r.explanation["delta"]) > 1e-6  # the check is not about zeros


def test_one_step_is_far_from_complete(text):
    """The same check fails with one interpolation point: it tells a real integral from a
    plausible-looking one."""
    errors = _relative_errors(text.run(_texts(), _explain("classify", steps=1)), eps=1e-8)
    assert max(errors) > 0.05


def test_a_named_target_is_explained_whatever_ranks_first(text):
    texts = _texts()
    top = text.run(texts, _explain("classify", steps=64))
    named = text.run(texts, _explain("classify", steps=64, target="neutral"))
    assert {r.explanation["target"] for r in named} == {"neutral"}
    assert max(_relative_errors(named, eps=1e-8)) <= 0.01
    assert [r.output for r in named] == [r.output for r in top]  # the labels are unchanged
    assert any(r.output[0]["label"] != "neutral" for r in top)
    for a, b in zip(top, named, strict=True):
        if a.output[0]["label"] == "neutral":
            assert a.explanation == b.explanation


def test_text_explanations_do_not_depend_on_the_batch(text):
    """Within 1e-4 of each item's own scale: the tiny model's logits move by about 1e-4
    between input and baseline, so an absolute 1e-4 would hold for any numbers at all."""
    texts = _texts(16)
    params = _explain("classify", steps=8)
    budget = text.explain_executor.max_batch_tokens
    text.explain_executor.max_batch_tokens = 8192  # many items a batch, and many a pass
    try:
        lengths = [len(e["input_ids"]) for e in text.tokenize(texts, True)[0]]
        assert max(map(len, text.plan(lengths, text.cost_factor(params)))) >= 4
        batched = text.run(texts, params)
    finally:
        text.explain_executor.max_batch_tokens = budget
    for value, together in zip(texts, batched, strict=True):
        alone = text.run([value], params)[0].explanation
        assert abs(alone["sum"] - together.explanation["sum"]) < 1e-4 * abs(alone["delta"])
        scale = max(abs(t["score"]) for t in alone["tokens"])
        for a, b in zip(alone["tokens"], together.explanation["tokens"], strict=True):
            assert {**a, "score": 0} == {**b, "score": 0}
            assert abs(a["score"] - b["score"]) < 1e-4 * scale


def test_offsets_point_at_each_tokens_characters(text):
    normalize = text._plain.normalizer.normalize_str
    results = text.run(_texts(), _explain("classify", steps=2))
    for value, result in zip(_texts(), results, strict=True):
        parts = [value] if isinstance(value, str) else value
        segments = {t["segment"] for t in result.explanation["tokens"]}
        assert segments == set(range(len(parts)))
        for t in result.explanation["tokens"]:
            if t["token"] == "[UNK]":
                continue
            piece = parts[t["segment"]][t["start"] : t["end"]]
            assert normalize(piece) == t["token"].removeprefix("##"), (t, piece)


def test_out_of_memory_in_explained_text_backs_off_and_keeps_the_explanations(text):
    texts = _texts(30)
    params = _explain("classify", steps=4)
    clean = text.run(texts, params)
    budget = text.explain_executor.max_batch_tokens
    real = text.model.forward
    rows: list[int] = []

    def small_memory(*args: Any, **kwargs: Any) -> Any:
        n = len(kwargs.get("inputs_embeds", kwargs.get("input_ids")))
        rows.append(n)
        if n > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(*args, **kwargs)

    text.model.forward = small_memory
    try:
        got = text.run(texts, params)
    finally:
        del text.model.forward
        text.explain_executor.max_batch_tokens = budget
    assert max(rows) > 8 and max(n for n in rows if n <= 8) == 8  # the fault landed
    assert text.explain_executor.oom_events >= 2  # batches halved, and passes within one
    assert text.executor.oom_events == 0  # plain batches keep their budget
    for a, b in zip(clean, got, strict=True):
        assert a.output == b.output and a.explanation["target"] == b.explanation["target"]
        assert abs(a.explanation["sum"] - b.explanation["sum"]) < 1e-4 * abs(a.explanation["sum"])


def test_a_worker_writes_the_explanation_beside_the_output(text):
    """The item's `output` keeps the shape it has without explanations."""
    import orjson

    from core.codec import pack_inputs, unpack_lines
    from core.store.chunk_leases import ChunkWork
    from worker.run_chunk import render_lines, run_work

    records = [(0, "a", "a fine text"), (1, "b", ["a text", "its pair"])]
    params = {"top_k": 2, "explain": {"steps": 4, "target": "negative"}}
    work = ChunkWork(1, "t", "j", "tiny-classify", "classify", params, inputs=pack_inputs(records))
    lines = [
        orjson.loads(x)
        for x in unpack_lines(render_lines(work, run_work(text, work, lambda: False)).blob)
    ]
    for line in lines:
        assert set(line) == {"custom_id", "index", "output", "usage", "explanation"}
        assert [set(x) for x in line["output"]] == [{"label", "score"}] * 2
        assert line["explanation"]["target"] == "negative"
        assert set(line["explanation"]) == {"target", "tokens", "sum", "delta"}
    assert {t["segment"] for t in lines[1]["explanation"]["tokens"]} == {0, 1}


# -- images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "steps"),
    [("tiny-vit", 64), ("tiny-resnet", 32), ("tiny-cnn", 256), ("tiny-cnn-script", 256)],
)
def test_image_attributions_add_up_to_the_logit_difference(images, name, steps):
    results = images[name].run(_images(6, seed=1), _explain("classify_image", steps=steps))
    assert max(_relative_errors(results, eps=1e-6)) <= 0.01
    for r in results:
        grid = r.explanation["grid"]
        assert len(grid) == 14 and {len(row) for row in grid} == {14}
        assert abs(sum(map(sum, grid)) - r.explanation["sum"]) < 1e-4 * abs(r.explanation["sum"])
        assert r.explanation["target"] == r.output[0]["label"]


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-cnn"])
def test_one_step_is_far_from_complete_on_images(images, name):
    """(tiny-resnet is left out: its random ReLU network has no biases, so it is linear on
    every ray from the zero baseline and one point integrates it exactly.)"""
    results = images[name].run(_images(6, seed=1), _explain("classify_image", steps=1))
    assert max(_relative_errors(results, eps=1e-6)) > 0.05


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-cnn"])
def test_image_explanations_do_not_depend_on_the_batch(images, name):
    values = _images(8, seed=2)
    params = _explain("classify_image", steps=8, target="ship" if name == "tiny-cnn" else "square")
    batched = images[name].run(values, params)
    for value, together in zip(values, batched, strict=True):
        alone = images[name].run([value], params)[0].explanation
        assert alone["target"] == together.explanation["target"]
        cells = zip(chain(*alone["grid"]), chain(*together.explanation["grid"]), strict=True)
        assert max(abs(a - b) for a, b in cells) < 1e-4 * max(abs(alone["sum"]), 1e-3)


def test_grids_pool_every_pixel_once():
    from models.explain_images import pool_grid

    maps = torch.arange(2 * 32 * 20, dtype=torch.float64).reshape(2, 32, 20)
    grid = pool_grid(maps)
    assert grid.shape == (2, 14, 14) and torch.allclose(grid.sum((1, 2)), maps.sum((1, 2)))
    assert pool_grid(maps[:, :5, :3]).shape == (2, 5, 3)  # never finer than the image
    assert torch.equal(pool_grid(maps[:, :5, :3]), maps[:, :5, :3])


def test_out_of_memory_in_an_explained_batch_halves_it_and_keeps_the_explanations(registry):
    from models.classify_image import ClassifyImageRunner

    runner = ClassifyImageRunner(registry["tiny-cnn"], limits=LIMITS)
    values = _images(12, seed=3)
    params = _explain("classify_image", steps=4)  # 6 rows an image: two batches of 6
    clean = runner.run(values, params)
    real = runner.classifier.logits
    sizes: list[int] = []

    def small_memory(pixels: torch.Tensor) -> torch.Tensor:
        sizes.append(len(pixels))
        if len(pixels) > 8:  # neither the ends of 6 images (12 rows) nor a pass of 64 fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(pixels)

    runner.classifier.logits = small_memory  # type: ignore[method-assign]
    got = runner.run(values, params)
    assert sizes[0] == 12 and runner.explain_executor.oom_events >= 2
    assert runner.explain_executor.max_batch_tokens <= 8 and runner.executor.oom_events == 0
    for a, b in zip(clean, got, strict=True):
        assert a.output == b.output and a.explanation["target"] == b.explanation["target"]
        assert abs(a.explanation["sum"] - b.explanation["sum"]) < 1e-5


def test_an_unknown_target_fails_each_item_not_the_chunk(images):
    results = images["tiny-cnn"].run(_images(3), _explain("classify_image", target="zebra"))
    assert {r.error_code for r in results} == {"invalid_params"}


# -- the API ------------------------------------------------------------------------------


def _jobs(cfg: Any) -> int:
    from sqlalchemy import func, select

    from core.db import read_session
    from core.tables import Job

    with read_session(cfg.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


@pytest.mark.parametrize(
    ("model", "explain", "param"),
    [
        ("tiny-classify", {"method": "shap"}, "params.explain.method"),
        ("tiny-classify", {"steps": 0}, "params.explain.steps"),
        ("tiny-classify", {"steps": 513}, "params.explain.steps"),
        ("tiny-classify", {"steps": "many"}, "params.explain.steps"),
        ("tiny-classify", {"target": "bogus"}, "params.explain.target"),
        ("tiny-classify", {"target": ""}, "params.explain.target"),
        ("tiny-classify", {"baseline": "zeros"}, "params.explain.baseline"),
        ("tiny-vit", {"target": "airplane"}, "params.explain.target"),  # a CIFAR label
        ("tiny-cnn", {"target": "circle"}, "params.explain.target"),
        ("tiny-embed", {}, "params.explain"),
    ],
)
def test_bad_explain_params_are_a_400_before_a_job_exists(api, alice, cfg, model, explain, param):
    image = data_url(encode(random_image(random.Random(0))))
    body = {
        "model": model,
        "inputs": [{"input": "text" if model.endswith(("classify", "embed")) else image}],
        "params": {"explain": explain},
    }
    r = api.post("/v1/jobs", json=body, headers=alice)
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_params", param)
    assert _jobs(cfg) == 0


@pytest.mark.parametrize(
    ("model", "target"), [("tiny-classify", "positive"), ("tiny-vit", "top"), ("tiny-cnn", "ship")]
)
def test_explain_params_are_kept_with_their_defaults(api, alice, model, target):
    image = data_url(encode(random_image(random.Random(0))))
    body = {
        "model": model,
        "inputs": [{"input": "text" if model == "tiny-classify" else image}],
        "params": {"explain": {"target": target}},
    }
    r = api.post("/v1/jobs", json=body, headers=alice)
    assert r.status_code == 201, r.text
    want = {"method": "integrated_gradients", "steps": 32, "target": target}
    assert r.json()["params"]["explain"] == want


def test_an_explained_job_gets_chunks_sized_to_its_cost(api, alice, cfg):
    """tiny-classify's chunk_size is 100 plain items; an item explained at 8 steps costs
    26 of them, so chunks hold 3 (none of the model's chunks have been timed yet)."""
    from sqlalchemy import select

    from core.contracts.params import item_cost
    from core.db import read_session
    from core.tables import Chunk

    assert item_cost(None) == 1 and item_cost({"explain": {"steps": 8}}) == 26
    assert item_cost({"explain": {}}) == 98  # the default 32 steps
    sizes = {}
    for explain in (None, {"steps": 8}):
        body = {
            "model": "tiny-classify",
            "inputs": [{"input": f"text {i}"} for i in range(12)],
            "params": {"explain": explain} if explain else {},
        }
        r = api.post("/v1/jobs", json=body, headers=alice)
        assert r.status_code == 201, r.text
        with read_session(cfg.database_url) as session:
            query = select(Chunk.n_items).where(Chunk.job_id == r.json()["id"])
            sizes[bool(explain)] = sorted(session.scalars(query))
    assert sizes == {False: [12], True: [3, 3, 3, 3]}
