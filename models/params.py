"""Per-task job parameters and input shapes, checked by the API before a job exists.
Torch-free: the API imports this module."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EmbedParams(BaseModel):
    """Parameters of an embed job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalize: bool = True
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)


class ClassifyParams(BaseModel):
    """Parameters of a classify job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int | Literal["all"] = Field(default=1, description="Labels per item, or `all`")
    truncate: bool = True

    @field_validator("top_k")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("top_k must be >= 1 or 'all'")
        return value


PARAMS_BY_TASK: dict[str, type[BaseModel]] = {"embed": EmbedParams, "classify": ClassifyParams}


def parse_params(task: str, raw: dict[str, Any] | None) -> BaseModel:
    """Validate a job's params for its task (raises pydantic.ValidationError)."""
    return PARAMS_BY_TASK[task].model_validate(raw or {})


class InputShapeError(ValueError):
    """An input is not of the shape its task takes."""


def check_input(task: str, value: Any) -> Any:
    """The input in the runner's shape (a text, or a (text, text_pair) pair), or raise.

    embed takes a string; classify a string or {"text": ..., "text_pair": ...}.
    """
    if isinstance(value, str):
        return value
    if task == "classify" and isinstance(value, dict):
        if set(value) - {"text", "text_pair"} or not isinstance(value.get("text"), str):
            raise InputShapeError('must be a string or {"text": str, "text_pair"?: str}')
        pair = value.get("text_pair")
        if pair is None:
            return value["text"]
        if not isinstance(pair, str):
            raise InputShapeError("text_pair must be a string")
        return [value["text"], pair]
    shape = 'a string or {"text", "text_pair"}' if task == "classify" else "a string"
    raise InputShapeError(f"must be {shape} for task {task}")


def input_texts(value: Any) -> list[str]:
    """The strings inside a checked input (for size and Unicode checks)."""
    return [value] if isinstance(value, str) else list(value)
