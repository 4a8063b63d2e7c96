"""Image jobs on real API and worker processes, on SQLite and PostgreSQL: a directory of
1,000 images (some corrupt, truncated or bombs) submitted by the CLI and run by a saved
CNN, every line checked against the program called on its declared preprocessing; an
inline job of a transformers ViT checked against transformers' pipeline; CSV and Parquet
results."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from core.contracts.images import ImageLimits, data_url, decode_image
from core.contracts.spec import load_registry
from tests.tiny_images import encode, png_header, random_image, reference_pipeline

pytestmark = pytest.mark.e2e
FORMATS = (("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("BMP", ".bmp"), ("GIF", ".gif"))


def _write_images(root: Path, n: int, seed: int) -> dict[str, str]:
    """n image files in nested folders; every 50th corrupt, truncated or a bomb. Returns
    {relative path: the error code it must get} for the bad ones."""
    rng = random.Random(seed)
    bad: dict[str, str] = {}
    for i in range(n):
        fmt, suffix = FORMATS[i % len(FORMATS)]
        name = f"set{i % 3}/img{i:04d}{suffix}"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode(random_image(rng), fmt)
        if i % 50 == 7:
            data, bad[name] = b"this is not an image", "invalid_image"
        elif i % 50 == 23:
            data, bad[name] = data[: len(data) // 3], "invalid_image"
        elif i % 50 == 41:
            data, bad[name] = png_header(50_000, 50_000), "image_too_large"
        path.write_bytes(data)
    (root / "notes.txt").write_text("not an image file: left out")
    return bad


def _sluice(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_directory_of_1000_images_end_to_end(stack, tmp_path):
    from models.image_programs import declared_pixels, load_program

    folder = tmp_path / "images"
    bad = _write_images(folder, 1000, seed=11)
    assert len(bad) == 60
    stack.start_worker("tiny-cnn")
    env = {**stack.env, "SLUICE_API_URL": stack.url, "SLUICE_API_KEY": stack.key}
    args = ["submit", str(folder), "--model", "tiny-cnn", "--params", '{"top_k": 3}', "--wait"]
    out = _sluice(args, env)
    assert out.returncode == 0, out.stderr
    job = stack.job(out.stdout.strip())
    assert job["status"] == "completed" and job["task"] == "classify_image"
    assert job["counts"] == {"total": 1000, "completed": 940, "failed": 60, "cancelled": 0}
    assert "completed: 940 ok, 60 failed" in out.stderr

    lines = [orjson.loads(x) for x in stack.results(job["id"])]
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("img*"))
    assert [x["custom_id"] for x in lines] == names
    assert [x["index"] for x in lines] == list(range(1000))
    spec = load_registry(stack.cfg.models_file)["tiny-cnn"]
    program = load_program(spec.resolved_source(), torch.device("cpu"))
    limits = ImageLimits(8 << 20, 40_000_000)
    labels = list(spec.labels)
    for line in lines:
        name = line["custom_id"]
        if name in bad:
            assert line["error"]["code"] == bad[name], line
            continue
        image = decode_image(data_url((folder / name).read_bytes()), limits)
        with torch.inference_mode():
            scores = torch.softmax(program(declared_pixels([image], spec.image)), dim=-1)[0]
        top = torch.topk(scores, 3)
        want = [labels[i] for i in top.indices.tolist()]
        assert [e["label"] for e in line["output"]] == want, name
        for entry, score in zip(line["output"], top.values.tolist(), strict=True):
            assert abs(entry["score"] - score) < 1e-4

    csv = stack.http.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"})
    assert csv.status_code == 200
    header, *records = csv.text.splitlines()
    assert header.startswith("index,custom_id,label,score,labels,scores") and len(records) == 1000
    parquet = stack.http.get(f"/v1/jobs/{job['id']}/results", params={"format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 1000
    assert table.column("labels")[0].as_py() == [e["label"] for e in lines[0]["output"]]


def test_an_inline_vit_job_equals_the_pipeline(stack):
    rng = random.Random(12)
    images = [random_image(rng) for _ in range(60)]
    inputs = [{"custom_id": f"i{n}", "input": data_url(encode(im))} for n, im in enumerate(images)]
    inputs[5]["input"] = {"image": inputs[5]["input"].split(",", 1)[1]}  # bare base64 form
    inputs[9]["input"] = "data:image/png;base64,AAAA"
    stack.start_worker("tiny-vit")
    job, lines = stack.run_to_end("tiny-vit", inputs, {"top_k": 2})
    assert job["status"] == "completed" and job["counts"]["failed"] == 1
    assert lines[9]["error"]["code"] == "invalid_image"
    path = load_registry(stack.cfg.models_file)["tiny-vit"].resolved_source()
    reference = reference_pipeline(path)
    want = reference([im.convert("RGB") for im in images], top_k=2)
    for n, line in enumerate(lines):
        if n == 9:
            continue
        assert [e["label"] for e in line["output"]] == [e["label"] for e in want[n]]
        for ours, theirs in zip(line["output"], want[n], strict=True):
            assert abs(ours["score"] - theirs["score"]) < 1e-4


def test_image_job_errors_are_4xx(stack):
    r = stack.http.post("/v1/jobs", json={"model": "tiny-vit", "inputs": [{"input": 5}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = stack.http.post(
        "/v1/jobs",
        json={"model": "tiny-vit", "inputs": [{"input": "x"}], "params": {"truncate": True}},
    )
    assert r.status_code == 400, r.text
    img = data_url(encode(Image.new("RGB", (4, 4))))
    r = stack.http.post("/v1/jobs", json={"model": "tiny-vit", "inputs": [{"input": img}]})
    assert r.status_code == 201 and r.json()["task"] == "classify_image"
    assert r.json()["status"] == "queued"  # no worker: the image is decoded when it runs
