"""Tiny seeded image classifiers and test images: a ViT and a ResNet (transformers, with
their image processors), and a CNN of the CIFAR-10 tutorial's shape saved both as a
torch.export program (.pt2, dynamic batch) and as TorchScript."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

CIFAR_LABELS = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
# The layers every tiny transformer here shares (BERT, ViT): 2 layers of width 32.
TINY_LAYERS: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
VIT_LABELS = ["circle", "square", "triangle", "stripes"]


class Net(nn.Module):
    """The CIFAR-10 tutorial's CNN: two conv + pool layers, three linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def build_tiny_cnn(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """The seeded Net saved as root/net.pt2 (torch.export, dynamic batch) and root/net.pt
    (TorchScript): (exported, scripted)."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = Net().eval()
    example = (torch.randn(2, 3, 32, 32),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(net, example, dynamic_shapes=({0: batch},))
    exported = root / "net.pt2"
    torch.export.save(program, exported)
    scripted = root / "net.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13; models exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(net, example), scripted)
    return exported, scripted


def build_tiny_vit(path: Path, seed: int = 0) -> Path:
    """A seeded 2-layer ViT classifier at 32 px with its image processor."""
    from transformers import ViTConfig, ViTForImageClassification
    from transformers import ViTImageProcessorPil as ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        **TINY_LAYERS,
        num_labels=len(VIT_LABELS),
        id2label=dict(enumerate(VIT_LABELS)),
        label2id={label: i for i, label in enumerate(VIT_LABELS)},
    )
    ViTForImageClassification(config).eval().save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def build_tiny_resnet(path: Path, seed: int = 0) -> Path:
    """A seeded two-stage ResNet classifier with a 64 px image processor (resize the
    shorter side, crop the centre)."""
    from transformers import ConvNextImageProcessorPil as ConvNextImageProcessor
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=len(VIT_LABELS),
        id2label=dict(enumerate(VIT_LABELS)),
        label2id={label: i for i, label in enumerate(VIT_LABELS)},
    )
    ResNetForImageClassification(config).eval().save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(path)
    return path


def image_entries(root: Path) -> str:
    """models.yaml entries for the tiny image models built under root."""
    vit = build_tiny_vit(root / "tiny-vit", seed=4)
    resnet = build_tiny_resnet(root / "tiny-resnet", seed=5)
    exported, scripted = build_tiny_cnn(root / "tiny-cnn", seed=6)
    prep = (
        "    image:\n"
        "      size: [32, 32]\n"
        f"      mean: {list(CIFAR_MEAN)}\n"
        f"      std: {list(CIFAR_STD)}\n"
        f"    labels: {CIFAR_LABELS}\n"
    )
    common = "    task: classify_image\n    dtype: float32\n    chunk_size: 64\n"
    return (
        f"  tiny-vit:\n{common}    source: {vit}\n    max_batch_images: 16\n"
        f"  tiny-resnet:\n{common}    source: {resnet}\n    max_batch_images: 8\n"
        f"  tiny-cnn:\n{common}    source: {exported}\n    max_batch_images: 64\n{prep}"
        f"  tiny-cnn-script:\n{common}    source: {scripted}\n    max_batch_images: 64\n{prep}"
    )


def encode(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    """An image encoded in a format."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def random_image(
    rng: random.Random, mode: str = "RGB", size: tuple[int, int] | None = None
) -> Image.Image:
    """A seeded image of random size (16 to 96 px a side) with shapes and noise."""
    from PIL import ImageDraw

    width, height = size or (rng.randint(16, 96), rng.randint(16, 96))
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 4)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randint(2, width), y0 + rng.randint(2, height))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return image if mode == "RGB" else image.convert(mode)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit grey) and holds one row of data: a
    decompression bomb's header without its payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    idat = zlib.compress(b"\x00" + b"\x00" * min(width, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reference_pipeline(path: str) -> Any:
    """transformers' image-classification pipeline on a model directory at fp32 on the
    CPU, with the directory's own image processor: the reference for classify_image."""
    from transformers import AutoImageProcessor, pipeline

    return pipeline(
        "image-classification",
        model=path,
        image_processor=AutoImageProcessor.from_pretrained(path),
        device="cpu",
        dtype=torch.float32,
    )
