"""Per-task job parameters and input shapes, checked by the API before a job exists.
Torch-free: the API imports this module."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.contracts.images import check_image_input


class EmbedParams(BaseModel):
    """Parameters of an embed job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalize: bool = True
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)


class _TopLabels(BaseModel):
    """The labels a classification returns per item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int | Literal["all"] = Field(default=1, description="Labels per item, or `all`")

    @field_validator("top_k")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("top_k must be >= 1 or 'all'")
        return value


class ExplainParams(BaseModel):
    """An opt-in explanation of each item: integrated gradients of one label's logit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["integrated_gradients"] = "integrated_gradients"
    steps: int = Field(default=32, ge=1, le=512, description="Interpolation points per item")
    target: str = Field(
        default="top",
        min_length=1,
        max_length=256,
        description='"top" (each item\'s best label) or a label of the model',
    )


class _Explainable(_TopLabels):
    """Labels per item, and optionally an explanation of one label per item."""

    explain: ExplainParams | None = None


class ClassifyParams(_Explainable):
    """Parameters of a classify job."""

    truncate: bool = True


class ClassifyImageParams(_Explainable):
    """Parameters of a classify_image job."""


class GenerateParams(BaseModel):
    """Parameters of a generate job (an item may carry its own `seed`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=128, ge=1, le=32768)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="0: greedy")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    stop: list[str] = Field(default_factory=list, max_length=4)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _short(cls, value: list[str]) -> list[str]:
        if any(not s or len(s) > 64 for s in value):
            raise ValueError("stop strings must be 1 to 64 characters")
        return value


PARAMS_BY_TASK: dict[str, type[BaseModel]] = {
    "embed": EmbedParams,
    "classify": ClassifyParams,
    "generate": GenerateParams,
    "classify_image": ClassifyImageParams,
}


def item_cost(params: dict[str, Any] | None) -> int:
    """What an item costs under a job's params, in plain forwards: an explanation's
    steps + 2 forwards and steps backwards (about two forwards each); 1 without one."""
    explain = (params or {}).get("explain")
    if not isinstance(explain, dict):
        return 1
    return 3 * int(explain.get("steps", ExplainParams.model_fields["steps"].default)) + 2


def parse_params(task: str, raw: dict[str, Any] | None) -> BaseModel:
    """Validate a job's params for its task (raises pydantic.ValidationError)."""
    return PARAMS_BY_TASK[task].model_validate(raw or {})


class InputShapeError(ValueError):
    """An input is not of the shape its task takes."""


def _check_generate(value: Any) -> Any:
    """A prompt string, or {"prompt"} or {"messages": [{"role", "content"}]}, each with an
    optional integer "seed"."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or set(value) - {"prompt", "messages", "seed"}:
        raise InputShapeError('must be a prompt string, {"prompt": str} or {"messages": [...]}')
    seed = value.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63
    ):
        raise InputShapeError("seed must be an integer from 0 to 2**63-1")
    if ("prompt" in value) == ("messages" in value):
        raise InputShapeError('needs exactly one of "prompt" and "messages"')
    if "prompt" in value:
        if not isinstance(value["prompt"], str):
            raise InputShapeError("prompt must be a string")
        return value
    messages = value["messages"]
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict)
            and set(m) == {"role", "content"}
            and m["role"] in ("system", "user", "assistant")
            and isinstance(m["content"], str)
            for m in messages
        )
    ):
        raise InputShapeError(
            "messages must be a non-empty list of {role: system|user|assistant, content: str}"
        )
    return value


def check_input(task: str, value: Any) -> Any:
    """The input in the runner's shape (a text, or a (text, text_pair) pair), or raise.

    embed takes a string; classify a string or {"text": ..., "text_pair": ...}; classify_image
    an image (core.contracts.images), whose content is checked when it is decoded.
    """
    if task == "generate":
        return _check_generate(value)
    if task == "classify_image":
        try:
            return check_image_input(value)
        except TypeError as exc:
            raise InputShapeError(str(exc)) from None
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
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if "prompt" in value:
            return [value["prompt"]]
        return [m[k] for m in value["messages"] for k in ("role", "content")]
    return list(value)
