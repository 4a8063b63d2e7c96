"""Parsing models.yaml into validated specs. Torch-free: the API imports this module."""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The registry bundled with the runners (models/ ships it as package data).
DEFAULT_MODELS_FILE = Path(__file__).resolve().parents[2] / "models" / "models.yaml"

Task = Literal["embed", "classify", "generate", "classify_image"]
DType = Literal["float32", "bfloat16", "float16", "auto"]
# Sources that are a saved program (a user's own network) rather than a transformers model:
# torch.export's .pt2, or TorchScript.
EXPORTED_SUFFIXES = (".pt2",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


class ImagePreprocessing(BaseModel):
    """How a saved program wants its images: resized to size (height, width), scaled to
    [0, 1], normalised per channel with mean and std, channels in this order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: tuple[int, int] = Field(description="(height, width) in pixels")
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: Literal["RGB", "BGR", "L"] = "RGB"
    resample: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    @model_validator(mode="after")
    def _consistent(self) -> ImagePreprocessing:
        problems = []
        if not all(1 <= side <= 4096 for side in self.size):
            problems.append("size: each side must be 1 to 4096 pixels")
        n = 1 if self.channels == "L" else 3
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != n:
                problems.append(f"{name}: needs {n} values for channels {self.channels}")
        if any(v <= 0 for v in self.std):
            problems.append("std: every value must be > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ModelSpec(BaseModel):
    """One registered model: what it does and how to load and batch it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    task: Task
    source: str
    revision: str | None = None
    dtype: DType = "auto"
    # CPU-only dynamic int8 quantisation of linear layers: faster, but measurably less
    # faithful (see bench/); never on unless asked for.
    quantize: Literal["none", "int8"] = "none"
    max_length: int = Field(default=512, ge=1, le=1_000_000)
    max_batch_tokens: int = Field(default=8192, ge=1)
    # The budget on a GPU, which fits far larger micro-batches than a CPU needs to stay
    # efficient; unset, a GPU uses max_batch_tokens too.
    gpu_max_batch_tokens: int | None = Field(default=None, ge=1)
    chunk_size: int = Field(default=512, ge=1, le=100_000)
    # classify_image: images per micro-batch on a CPU and on a GPU (unset: the CPU's).
    max_batch_images: int = Field(default=32, ge=1, le=65536)
    gpu_max_batch_images: int | None = Field(default=None, ge=1, le=65536)
    # classify_image from a saved program: its preprocessing and labels (a transformers
    # model has its image processor and id2label).
    image: ImagePreprocessing | None = None
    labels: tuple[str, ...] | None = None
    # classify_image: NHWC memory layout, which some convolutions run faster in; unset
    # (auto), the worker times both layouts when it loads the model and keeps the faster.
    channels_last: bool | None = None

    @model_validator(mode="after")
    def _task_fields(self) -> ModelSpec:
        problems = []
        program = self.program_format() is not None
        if self.task != "classify_image":
            if program:
                problems.append("source: a saved program serves only classify_image")
            for name in ("image", "labels"):
                if getattr(self, name) is not None:
                    problems.append(f"{name}: only for classify_image")
        elif program:
            if self.image is None:
                problems.append("image: a saved program needs its preprocessing (size, mean, std)")
            if not self.labels:
                problems.append("labels: a saved program needs its labels, in output order")
            if self.dtype in ("bfloat16", "float16"):
                problems.append("dtype: a saved program runs as saved (float32 or auto)")
        elif self.image is not None or self.labels is not None:
            problems.append("image and labels: only for a saved program (.pt2 or TorchScript)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def program_format(self) -> Literal["export", "torchscript"] | None:
        """Whether the source is a saved program: torch.export's .pt2, TorchScript, or
        neither (a transformers model)."""
        if self.source.endswith(EXPORTED_SUFFIXES):
            return "export"
        if self.source.endswith(TORCHSCRIPT_SUFFIXES):
            return "torchscript"
        return None

    def batch_images(self, device_type: str) -> int:
        """Images per micro-batch on a device type ("cpu", "cuda")."""
        if device_type == "cuda" and self.gpu_max_batch_images is not None:
            return self.gpu_max_batch_images
        return self.max_batch_images

    def batch_tokens(self, device_type: str) -> int:
        """The padded-token budget of one micro-batch on a device type ("cpu", "cuda")."""
        if device_type == "cuda" and self.gpu_max_batch_tokens is not None:
            return self.gpu_max_batch_tokens
        return self.max_batch_tokens

    def resolved_source(self) -> str:
        """A local directory for `package:` and path sources; the hub id otherwise."""
        if self.source.startswith("package:"):
            pkg, _, sub = self.source.removeprefix("package:").partition("/")
            found = importlib.util.find_spec(pkg)
            if found is None or not found.submodule_search_locations:
                raise ModelRegistryError(f"model {self.name}: package {pkg!r} is not installed")
            return str(Path(next(iter(found.submodule_search_locations))) / sub)
        return self.source

    def _config(self) -> dict[str, Any]:
        """The model's config.json where it is on local disk (else empty)."""
        try:
            config = json.loads((Path(self.resolved_source()) / "config.json").read_text())
        except (OSError, ValueError, ModelRegistryError):
            return {}
        return config if isinstance(config, dict) else {}

    def output_size(self) -> int | None:
        """The embedding width (embed models), from config.json."""
        width = self._config().get("hidden_size")
        return int(width) if self.task == "embed" and isinstance(width, int) else None

    def label_names(self) -> list[str] | None:
        """The labels in output order (classify models): the registry's for a saved
        program, else config.json's id2label."""
        if self.labels is not None:
            return list(self.labels)
        id2label = self._config().get("id2label")
        if self.task not in ("classify", "classify_image") or not isinstance(id2label, dict):
            return None
        return [str(id2label[k]) for k in sorted(id2label, key=int)]


class ModelRegistryError(ValueError):
    """models.yaml is missing, malformed, or names something that cannot be found."""


def parse_registry(text: str, *, origin: str = "models.yaml") -> dict[str, ModelSpec]:
    """Validate the text of a models.yaml; raise ModelRegistryError with every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelRegistryError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict) or not doc["models"]:
        raise ModelRegistryError(f"{origin}: expected a mapping `models:` with at least one entry")
    specs: dict[str, ModelSpec] = {}
    problems: list[str] = []
    for name, entry in doc["models"].items():
        if not isinstance(entry, dict):
            problems.append(f"{name}: expected a mapping")
            continue
        try:
            specs[str(name)] = ModelSpec(name=str(name), **entry)
        except ValidationError as exc:
            for err in exc.errors():
                where = "".join(f".{p}" for p in err["loc"])
                # A validator of several fields reports each problem, "; "-separated.
                for problem in err["msg"].removeprefix("Value error, ").split("; "):
                    problems.append(f"{name}{where}: {problem}")
    if problems:
        raise ModelRegistryError(f"{origin}: invalid entries:\n  " + "\n  ".join(problems))
    return specs


@lru_cache(maxsize=8)
def load_registry(path: Path | None = None) -> dict[str, ModelSpec]:
    """The registry from a models.yaml file (the bundled one by default)."""
    path = path or DEFAULT_MODELS_FILE
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ModelRegistryError(f"cannot read models file {path}: {exc}") from exc
    return parse_registry(text, origin=str(path))
