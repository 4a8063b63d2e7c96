"""`sluice demo --images`: an image job end to end with nothing downloaded. Shapes are drawn
(circles, squares, triangles, crosses on noisy backgrounds), a small CNN of the CIFAR-10
tutorial's shape learns them for a few seconds, is saved with torch.export and registered
as a classify_image model, and a held-out set of drawn images runs through the API and a
worker; the summary gives items/s and the accuracy against the drawn labels."""

from __future__ import annotations

import io
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import orjson
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "cross")
SIDE = 32
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def draw_shape(rng: random.Random, shape: str, side: int = SIDE) -> Image.Image:
    """One shape of random size, place and colours on a noisy background, slightly
    blurred: easy for a person, not trivial for a small network."""
    background = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", (side, side), background)
    grain = np.random.default_rng(rng.randrange(1 << 32)).integers(-16, 17, (side, side, 1))
    noisy = np.asarray(image, dtype=np.int16) + grain.astype(np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    while True:  # a colour that stands out from the background
        fill = tuple(rng.randrange(256) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(fill, background, strict=True)) > 160:
            break
    draw = ImageDraw.Draw(image)
    size = rng.uniform(0.45, 0.85) * side
    cx, cy = rng.uniform(size / 2, side - size / 2), rng.uniform(size / 2, side - size / 2)
    half = size / 2
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "square":
        angle = rng.uniform(0, math.pi / 2)
        corners = [angle + k * math.pi / 2 + math.pi / 4 for k in range(4)]
        r = half * math.sqrt(2) * 0.8
        draw.polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners], fill=fill)
    elif shape == "triangle":
        angle = rng.uniform(0, 2 * math.pi)
        corners = [angle + k * 2 * math.pi / 3 for k in range(3)]
        draw.polygon(
            [(cx + half * math.cos(a), cy + half * math.sin(a)) for a in corners], fill=fill
        )
    else:
        width = max(2.0, size / 4)
        draw.rectangle((cx - half, cy - width / 2, cx + half, cy + width / 2), fill=fill)
        draw.rectangle((cx - width / 2, cy - half, cx + width / 2, cy + half), fill=fill)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def drawn_set(n: int, seed: int) -> list[tuple[Image.Image, int]]:
    """n (image, label index) pairs, the labels in turn."""
    rng = random.Random(seed)
    return [(draw_shape(rng, SHAPES[i % len(SHAPES)]), i % len(SHAPES)) for i in range(n)]


def write_images(folder: Path, n: int, seed: int) -> list[Path]:
    """n drawn images as PNG and JPEG files under folder/<shape>/, for the job."""
    paths = []
    for i, (image, label) in enumerate(drawn_set(n, seed)):
        fmt, suffix = ("PNG", ".png") if i % 2 else ("JPEG", ".jpg")
        path = folder / SHAPES[label] / f"{i:05d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def train_cnn(out: Path, *, samples: int = 4000, epochs: int = 4, seed: int = 0) -> float:
    """Train the CIFAR-10 tutorial's CNN on drawn shapes and save it with torch.export
    (batch dimension dynamic) at out; returns its accuracy on a held-out drawn set."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def tensors(pairs: list[tuple[Image.Image, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = np.stack([np.asarray(im, dtype=np.float32) / 255 for im, _ in pairs])
        pixels = (pixels - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
        labels = torch.tensor([label for _, label in pairs])
        return torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()), labels

    x, y = tensors(drawn_set(samples, seed + 1))
    hold_x, hold_y = tensors(drawn_set(800, seed + 2))
    net = nn.Sequential(
        nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, len(SHAPES)),
    )  # fmt: skip
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_of = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss_of(net(x[batch]), y[batch]).backward()
            optimiser.step()
    net.eval()
    with torch.inference_mode():
        accuracy = float((net(hold_x).argmax(-1) == hold_y).float().mean())
    batch_dim = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(net, (hold_x[:2],), dynamic_shapes=({0: batch_dim},))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out)
    return accuracy


def registry_entry(name: str, program: Path) -> str:
    """The models.yaml text that registers the trained program."""
    return (
        "models:\n"
        f"  {name}:\n"
        "    task: classify_image\n"
        f"    source: {program.resolve()}\n"
        "    max_batch_images: 64\n"
        "    chunk_size: 256\n"
        "    image:\n"
        f"      size: [{SIDE}, {SIDE}]\n"
        f"      mean: {list(MEAN)}\n"
        f"      std: {list(STD)}\n"
        f"    labels: {list(SHAPES)}\n"
    )


def prepare(workdir: Path, count: int) -> tuple[Path, list[Path], float, float | None]:
    """Train and register the demo model (or take the one an earlier run trained in
    workdir), and draw the job's images: (models file, image paths, held-out accuracy,
    seconds spent training, None when reused)."""
    program, record = workdir / "shapes-cnn.pt2", workdir / "shapes-cnn.json"
    trained: float | None = None
    try:
        accuracy = float(orjson.loads(record.read_bytes())["accuracy"])
        if not program.is_file():
            raise FileNotFoundError(program)
    except (OSError, ValueError, KeyError):
        started = time.perf_counter()
        accuracy = train_cnn(program)
        trained = time.perf_counter() - started
        record.write_bytes(orjson.dumps({"accuracy": accuracy}))
    models_file = workdir / "models.yaml"
    models_file.write_text(registry_entry("shapes-cnn", program))
    folder = workdir / "images"
    if folder.is_dir():
        shutil.rmtree(folder)
    paths = write_images(folder, count, seed=7)
    return models_file, paths, accuracy, trained
