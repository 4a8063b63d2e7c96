"""Image inputs and the classify_image runner: every accepted format and mode, the byte and
pixel limits (checked before a pixel is decoded), preprocessing against the model's own
processor and against a program's declared steps, planning by image count, batch
invariance, OOM back-off, and labels and scores against transformers' pipeline."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.contracts.images import (
    ImageLimits,
    ImageRejected,
    check_image_input,
    data_url,
    decode_image,
    image_pixels,
)
from core.contracts.items import ItemInvalid, ItemLimits, check_item
from core.contracts.params import parse_params
from core.contracts.spec import ModelRegistryError, load_registry, parse_registry
from tests.tiny_images import (
    CIFAR_MEAN,
    CIFAR_STD,
    encode,
    png_header,
    random_image,
    reference_pipeline,
)

LIMITS = ImageLimits(max_bytes=8 << 20, max_pixels=40_000_000)


@pytest.fixture(scope="module")
def registry(registry_file: Path) -> dict[str, Any]:
    return load_registry(registry_file)


@pytest.fixture(scope="module")
def runners(registry: dict[str, Any]) -> dict[str, Any]:
    from models.classify_image import ClassifyImageRunner

    names = ("tiny-vit", "tiny-resnet", "tiny-cnn", "tiny-cnn-script")
    return {name: ClassifyImageRunner(registry[name], limits=LIMITS) for name in names}


def _params(**raw: Any) -> Any:
    return parse_params("classify_image", raw)


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = random.Random(seed)
    return [random_image(rng) for _ in range(n)]


# -- inputs and formats ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_each_format_decodes_to_rgb_of_its_size(fmt):
    image = random_image(random.Random(1), size=(40, 24))
    got = decode_image(data_url(encode(image, fmt)), LIMITS)
    assert got.mode == "RGB" and got.size == (40, 24)
    if fmt in ("PNG", "BMP"):  # lossless: the very pixels
        assert np.array_equal(np.asarray(got), np.asarray(image))


def test_a_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    got = np.asarray(decode_image(data_url(data, "gif"), LIMITS))
    assert tuple(got[0, 0]) == (255, 0, 0)


def test_the_three_input_forms_give_the_same_image():
    data = encode(random_image(random.Random(2)))
    bare = base64.b64encode(data).decode()
    forms = [data_url(data), bare, {"image": bare}, {"image": data_url(data)}]
    decoded = [np.asarray(decode_image(check_image_input(f), LIMITS)) for f in forms]
    assert all(np.array_equal(decoded[0], d) for d in decoded[1:])


@pytest.mark.parametrize("value", [None, 3, "", {"img": "x"}, {"image": 5}, ["x"]])
def test_other_shapes_are_invalid_input(value):
    with pytest.raises(ItemInvalid) as caught:
        check_item("classify_image", value, ItemLimits(100, 100))
    assert caught.value.code == "invalid_input"


def test_a_large_image_is_not_held_to_the_text_limit():
    big = data_url(encode(random_image(random.Random(3), size=(300, 300))))
    assert len(big) > 1000
    assert check_item("classify_image", big, ItemLimits(1000, 100)) == big


def test_cmyk_palette_alpha_and_16_bit_images_convert_as_processors_expect():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    assert tuple(np.asarray(decode_image(data_url(encode(cmyk, "JPEG")), LIMITS))[0, 0]) in [
        (254, 0, 0),
        (255, 0, 0),
        (255, 0, 1),
        (254, 0, 1),
    ]
    clear = Image.new("RGBA", (4, 4), (10, 20, 30, 0))  # fully transparent: white
    assert tuple(np.asarray(decode_image(data_url(encode(clear)), LIMITS))[0, 0]) == (255,) * 3
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))  # half black over white
    assert tuple(np.asarray(decode_image(data_url(encode(half)), LIMITS))[0, 0]) == (127,) * 3
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    assert tuple(np.asarray(decode_image(data_url(encode(palette)), LIMITS))[0, 0]) == (0, 200, 0)
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))  # 16-bit white
    assert deep.mode.startswith("I")
    assert tuple(np.asarray(decode_image(data_url(encode(deep)), LIMITS))[0, 0]) == (255,) * 3
    grey = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert tuple(np.asarray(decode_image(data_url(encode(grey)), LIMITS))[0, 0]) == (127,) * 3


def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch):
    bomb = data_url(png_header(100_000, 100_000))  # 10 gigapixels declared, 100 bytes sent
    ten_by_ten = data_url(encode(Image.new("RGB", (10, 10))))

    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageRejected) as caught:
        decode_image(bomb, LIMITS)
    assert caught.value.code == "image_too_large" and "100000x100000" in caught.value.message
    small = ImageLimits(max_bytes=1 << 20, max_pixels=99)
    with pytest.raises(ImageRejected) as caught:
        decode_image(ten_by_ten, small)
    assert caught.value.code == "image_too_large"


def test_the_byte_limit_and_corrupt_images():
    data = encode(random_image(random.Random(4), size=(64, 64)))
    with pytest.raises(ImageRejected) as caught:
        decode_image(data_url(data), ImageLimits(max_bytes=len(data) - 1, max_pixels=10**9))
    assert caught.value.code == "image_too_large"
    decode_image(data_url(data), ImageLimits(max_bytes=len(data), max_pixels=10**9))
    bad = [
        data_url(data[: len(data) // 2]),  # truncated
        "not base64 at all!",
        "data:text/plain;base64,aGVsbG8=",
        data_url(b"GIF89a garbage"),
        data_url(encode(Image.new("RGB", (4, 4)), "TIFF")),  # a format not accepted
    ]
    for value in bad:
        with pytest.raises(ImageRejected) as caught:
            decode_image(value, LIMITS)
        assert caught.value.code == "invalid_image", value[:40]


def test_pixel_counts_for_bucketing_read_headers_only():
    values = [
        data_url(encode(Image.new("RGB", (10, 20)))),
        "garbage",
        {"image": data_url(png_header(3000, 2000))},
    ]
    assert image_pixels(values, LIMITS) == [200, 0, 6_000_000]


# -- registry -------------------------------------------------------------------------


def test_invalid_image_entries_list_every_problem():
    text = (
        "models:\n"
        "  a:\n    task: classify_image\n    source: /m/net.pt2\n    dtype: bfloat16\n"
        "  b:\n    task: classify_image\n    source: /m/net.pt\n"
        "    image: {size: [32, 0], mean: [0.5], std: [0.5, 0.5, -1], channels: RGB}\n"
        "    labels: [x]\n"
        "  c:\n    task: embed\n    source: /m/dir\n    labels: [x]\n"
    )
    with pytest.raises(ModelRegistryError) as caught:
        parse_registry(text)
    lines = str(caught.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        "a: image: a saved program needs its preprocessing (size, mean, std)",
        "a: labels: a saved program needs its labels, in output order",
        "a: dtype: a saved program runs as saved (float32 or auto)",
        "b.image: size: each side must be 1 to 4096 pixels",
        "b.image: mean: needs 3 values for channels RGB",
        "b.image: std: every value must be > 0",
        "c: labels: only for classify_image",
    ]


def test_a_program_whose_outputs_do_not_match_its_labels_fails_at_start(registry):
    from models.classify_image import ClassifyImageRunner

    spec = registry["tiny-cnn"].model_copy(update={"labels": ("a", "b")})
    with pytest.raises(ValueError, match=r"logits of shape \(2, 10\)"):
        ClassifyImageRunner(spec, limits=LIMITS)


# -- preprocessing, planning and the runner ----------------------------------------------


def test_declared_preprocessing_by_hand(runners):
    from models.image_programs import declared_pixels

    images = _images(3, seed=5)
    spec = runners["tiny-cnn"].spec
    got = declared_pixels(images, spec.image)
    for row, image in enumerate(images):
        resized = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
        want = (resized / 255 - np.asarray(CIFAR_MEAN)) / np.asarray(CIFAR_STD)
        assert np.allclose(got[row].numpy(), want.transpose(2, 0, 1), atol=1e-5)
    bgr = declared_pixels(images, spec.image.model_copy(update={"channels": "BGR"}))
    assert torch.equal(bgr[:, 0], got[:, 2])


def test_planning_by_image_count():
    from models.classify_image import plan_images

    assert plan_images(0, 8) == []
    assert [len(b) for b in plan_images(17, 8)] == [6, 6, 5]
    assert [p for batch in plan_images(100, 7) for p in batch] == list(range(100))
    assert all(len(b) <= 7 for b in plan_images(100, 7))


def _data(images: list[Image.Image]) -> list[str]:
    return [data_url(encode(image)) for image in images]


@pytest.mark.parametrize("name", ["tiny-cnn", "tiny-cnn-script"])
def test_a_program_equals_itself_called_on_the_declared_preprocessing(runners, name):
    from models.image_programs import declared_pixels, load_program

    runner = runners[name]
    images = _images(20, seed=6)
    got = runner.run(_data(images), _params(top_k="all"))
    program = load_program(runner.spec.resolved_source(), torch.device("cpu"))
    with torch.inference_mode():
        scores = torch.softmax(program(declared_pixels(images, runner.spec.image)), dim=-1)
    labels = list(runner.spec.labels)
    for row, result in enumerate(got):
        assert result.ok and len(result.output) == 10
        for entry in result.output:
            assert abs(entry["score"] - float(scores[row, labels.index(entry["label"])])) < 1e-5
        assert result.output[0]["label"] == labels[int(scores[row].argmax())]


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-resnet", "tiny-cnn"])
def test_batched_results_equal_one_at_a_time(runners, name):
    runner = runners[name]
    values = _data(_images(40, seed=7))
    batched = runner.run(values, _params(top_k=3))
    for value, together in zip(values, batched, strict=True):
        alone = runner.run([value], _params(top_k=3))[0]
        assert alone.output[0]["label"] == together.output[0]["label"]
        for a, b in zip(alone.output, together.output, strict=True):
            assert abs(a["score"] - b["score"]) < 1e-4


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-resnet"])
def test_labels_and_scores_equal_the_pipeline(runners, name):
    runner = runners[name]
    path = runner.spec.resolved_source()
    reference = reference_pipeline(path)
    images = _images(30, seed=8)
    got = runner.run(_data(images), _params(top_k=4))
    want = reference(images, top_k=4)
    for ours, theirs in zip(got, want, strict=True):
        assert ours.output[0]["label"] == theirs[0]["label"]
        by_label = {e["label"]: e["score"] for e in theirs}
        for entry in ours.output:
            assert abs(entry["score"] - by_label[entry["label"]]) < 1e-4


def test_a_bad_image_fails_alone_and_the_rest_match(runners):
    runner = runners["tiny-vit"]
    values = _data(_images(12, seed=9))
    mixed = list(values)
    mixed[3] = "definitely not an image"
    mixed[7] = data_url(png_header(100_000, 100_000))
    got = runner.run(mixed, _params())
    assert (got[3].error_code, got[7].error_code) == ("invalid_image", "image_too_large")
    clean = runner.run(values, _params())
    for i in set(range(12)) - {3, 7}:
        assert got[i].output == clean[i].output


def test_out_of_memory_halves_the_batch_and_keeps_the_lower_budget(registry):
    from models.classify_image import ClassifyImageRunner

    runner = ClassifyImageRunner(registry["tiny-cnn"], limits=LIMITS)
    values = _data(_images(64, seed=10))
    clean = runner.run(values, _params())
    assert runner.executor.max_batch_tokens == 64
    real = runner.classifier.logits
    sizes: list[int] = []

    def small_memory(pixels: torch.Tensor) -> torch.Tensor:
        sizes.append(len(pixels))
        if len(pixels) > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(pixels)

    runner.classifier.logits = small_memory  # type: ignore[method-assign]
    got = runner.run(values, _params())
    assert sizes[0] == 64 and max(s for s in sizes if s <= 16) == 16  # the fault landed
    assert runner.executor.oom_events >= 1 and runner.executor.max_batch_tokens <= 32
    assert [r.output for r in got] == [r.output for r in clean]


@pytest.mark.parametrize("name", ["tiny-resnet", "tiny-cnn", "tiny-cnn-script"])
def test_either_memory_layout_gives_the_same_scores(registry, name, caplog):
    from models.classify_image import ClassifyImageRunner

    values = _data(_images(16, seed=11))
    got = {}
    for layout in (False, True, None):  # None: auto, timed on a probe batch at load
        spec = registry[name].model_copy(update={"channels_last": layout})
        with caplog.at_level("INFO", logger="models.image_programs"):
            runner = ClassifyImageRunner(spec, limits=LIMITS)
        if layout is not None:
            assert runner.classifier.channels_last is layout
        got[layout] = runner.run(values, _params(top_k="all"))
    assert f"model {name}: channels_last" in caplog.text  # auto said what it chose
    for row in range(16):
        for layout in (True, None):
            ours = {e["label"]: e["score"] for e in got[layout][row].output}
            for entry in got[False][row].output:
                assert abs(ours[entry["label"]] - entry["score"]) < 1e-5
