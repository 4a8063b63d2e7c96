"""Parsing models.yaml into validated specs. Torch-free: the API imports this module."""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The registry bundled with the runners (models/ ships it as package data).
DEFAULT_MODELS_FILE = Path(__file__).resolve().parents[2] / "models" / "models.yaml"

Task = Literal["embed", "classify", "generate"]
DType = Literal["float32", "bfloat16", "float16", "auto"]


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

    def labels(self) -> list[str] | None:
        """The labels in id order (classify models), from config.json's id2label."""
        id2label = self._config().get("id2label")
        if self.task != "classify" or not isinstance(id2label, dict):
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
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"{name}.{where}: {err['msg']}")
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
