"""Image classifiers and their preprocessing: a transformers model with its image
processor, or a saved program (a user's own CNN: torch.export's .pt2, or TorchScript) with
the preprocessing its registry entry declares."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.contracts.spec import ImagePreprocessing, ModelSpec

log = logging.getLogger(__name__)
_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}
# A batch of decoded images in, model inputs (pixel_values) out.
Preprocess = Callable[[Sequence[Image.Image]], torch.Tensor]


def declared_pixels(images: Sequence[Image.Image], prep: ImagePreprocessing) -> torch.Tensor:
    """A float32 (N, C, H, W) batch as a program's entry declares it: each image in its
    channel mode, resized to size, scaled to [0, 1], normalised by mean and std, and its
    channels in the declared order."""
    height, width = prep.size
    mode = "L" if prep.channels == "L" else "RGB"
    batch = np.empty((len(images), height, width, len(prep.mean)), dtype=np.float32)
    for row, image in enumerate(images):
        image = image if image.mode == mode else image.convert(mode)
        resized = image.resize((width, height), _RESAMPLE[prep.resample])
        pixels = np.asarray(resized, dtype=np.float32)
        batch[row] = pixels.reshape(height, width, -1)
    batch /= 255.0
    batch -= np.asarray(prep.mean, dtype=np.float32)
    batch /= np.asarray(prep.std, dtype=np.float32)
    if prep.channels == "BGR":
        batch = batch[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


def load_program(path: str, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """A saved program, callable on a pixel batch: torch.export's .pt2 (its batch
    dimension must be dynamic) or TorchScript."""
    if path.endswith(".pt2"):
        program = torch.export.load(path)
        module = program.module()
        return module.to(device) if hasattr(module, "to") else module
    with warnings.catch_warnings():
        # TorchScript is deprecated (torch 2.13) but many models exist in it: serving them
        # is what the entry asks for, not a warning in every worker's log.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(path, map_location=device)
    return scripted.eval()


def logits_of(output: Any) -> torch.Tensor:
    """The logits in what a model or program returned: a tensor, a tuple whose first item
    is one, or an object with .logits."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"the model returned {type(output).__name__}, not logits")


class ImageClassifier:
    """A loaded image classifier: labels, the preprocessing of a decoded batch, and the
    forward pass to logits."""

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        path = spec.resolved_source()
        self.channel_mode = "RGB"
        self.preprocess: Preprocess
        if spec.program_format() is not None:
            assert spec.image is not None and spec.labels is not None  # the spec checked it
            prep = spec.image
            self.model: Any = load_program(path, device)
            self.labels = list(spec.labels)
            self.channel_mode = "L" if prep.channels == "L" else "RGB"
            self.preprocess = lambda images: declared_pixels(images, prep)
            self.multi_label = False
            self.config: Any = None
        else:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            model = AutoModelForImageClassification.from_pretrained(
                path, revision=spec.revision, dtype=dtype
            )
            self.model = model.to(device).eval()
            self.config = model.config
            processor = AutoImageProcessor.from_pretrained(path, revision=spec.revision)
            self.preprocess = lambda images: processor(images=list(images), return_tensors="pt")[
                "pixel_values"
            ]
            id2label = getattr(self.config, "id2label", None) or {}
            self.labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(len(id2label))]
            self.multi_label = (
                getattr(self.config, "problem_type", None) == "multi_label_classification"
            )
        self.channels_last = False
        if spec.image is not None:
            self._probe(spec.name, spec.image)
        self._choose_layout(spec)

    def _choose_layout(self, spec: ModelSpec) -> None:
        """channels_last as the entry says, or (auto) where it is measurably faster."""
        if not hasattr(self.model, "to") or spec.channels_last is False:
            return
        if spec.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.channels_last = True
            return
        from models.image_layout import PROBE_IMAGES, prefers_channels_last

        sample = Image.new("RGB", (224, 224), (120, 90, 60))
        probe = self.preprocess([sample] * PROBE_IMAGES).to(self.device, dtype=self.dtype)
        forward = self._forward
        self.channels_last, gain = prefers_channels_last(self.model, forward, probe)
        log.info(
            "model %s: channels_last %s (%.2fx the default layout on %d probe images)",
            spec.name,
            "on" if self.channels_last else "off",
            gain,
            PROBE_IMAGES,
        )

    def _forward(self, pixels: torch.Tensor) -> Any:
        # A transformers model takes pixel_values by name; a program, positionally.
        return self.model(pixel_values=pixels) if self.config is not None else self.model(pixels)

    def _probe(self, name: str, prep: ImagePreprocessing) -> None:
        """Run a saved program on two blank images, so a program that cannot take a
        batch, or whose outputs do not match its labels, fails when the worker starts."""
        blank = torch.zeros((2, len(prep.mean), *prep.size))
        try:
            with torch.inference_mode():
                width = self.logits(blank).shape
        except Exception as exc:
            raise ValueError(
                f"model {name}: the program does not run on a batch of 2 images of the "
                f"declared size {prep.size} (export it with a dynamic batch dimension): {exc}"
            ) from exc
        if tuple(width) != (2, len(self.labels)):
            raise ValueError(
                f"model {name}: the program returns logits of shape {tuple(width)} for 2 "
                f"images; its {len(self.labels)} labels need (2, {len(self.labels)})"
            )

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """float32 logits for a preprocessed batch."""
        pixels = pixels.to(self.device, dtype=self.dtype)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return logits_of(self._forward(pixels)).to(torch.float32)
