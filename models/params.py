"""Per-task job parameters, validated by the API before a job exists. Torch-free."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EmbedParams(BaseModel):
    """Parameters of an embed job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalize: bool = True
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)


PARAMS_BY_TASK: dict[str, type[BaseModel]] = {"embed": EmbedParams}


def parse_params(task: str, raw: dict[str, Any] | None) -> BaseModel:
    """Validate a job's params for its task (raises pydantic.ValidationError)."""
    return PARAMS_BY_TASK[task].model_validate(raw or {})
