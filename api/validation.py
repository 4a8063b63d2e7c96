"""Checking a job request against its model's task, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from api.schemas import JobCreate
from core.config import Settings
from core.contracts.items import ItemInvalid, ItemLimits, check_custom_id, check_item
from core.contracts.params import parse_params
from core.contracts.spec import ModelSpec
from core.contracts.token_counts import Counter, char_lengths
from core.errors import InvalidInput, ModelUnavailable, TooLarge
from core.store.jobs import JobSpec


def _unicode(value: str, param: str) -> str:
    """The string, if it is valid Unicode (JSON's \\ud800 escapes can smuggle in halves of
    surrogate pairs, which nothing downstream can encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{param} is not valid Unicode ({exc.reason})", param=param) from exc
    return value


def check_metadata(metadata: dict[str, str], max_pairs: int) -> None:
    """At most max_pairs pairs of valid Unicode, keys up to 64 and values up to 512
    characters (OpenAI's limits)."""
    if len(metadata) > max_pairs or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
        raise InvalidInput(
            f"metadata takes at most {max_pairs} pairs, keys up to 64 and values up to 512 "
            "characters",
            param="metadata",
        )
    for key, value in metadata.items():
        _unicode(key, "metadata")
        _unicode(value, f"metadata.{key}")


def validate_settings(
    body: JobCreate, registry: dict[str, ModelSpec], cfg: Settings
) -> tuple[ModelSpec, dict[str, Any]]:
    """The model and the validated params of a job request (inline or from a file)."""
    spec = registry.get(body.model)
    if spec is None:
        raise ModelUnavailable(
            f"unknown model {body.model!r}; GET /v1/models lists them", param="model"
        )
    check_metadata(body.metadata, cfg.max_metadata_pairs)
    try:
        params = parse_params(spec.task, body.params).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"params.{where}: {first['msg']}", code="invalid_params", param=f"params.{where}"
        ) from exc
    if params.get("max_new_tokens", 0) >= spec.max_length:
        raise InvalidInput(
            f"params.max_new_tokens: {spec.name} takes {spec.max_length} tokens in all, prompt "
            "included",
            code="invalid_params",
            param="params.max_new_tokens",
        )
    width = spec.output_size()
    if params.get("dimensions") and width and params["dimensions"] > width:
        raise InvalidInput(
            f"params.dimensions: {spec.name} gives {width} dimensions, asked for "
            f"{params['dimensions']}",
            code="invalid_params",
            param="params.dimensions",
        )
    return spec, params


def validate_job(
    body: JobCreate,
    registry: dict[str, ModelSpec],
    cfg: Settings,
    measure: Callable[[ModelSpec], Counter | None] | None = None,
) -> JobSpec:
    """A JobSpec for a valid request; InvalidInput/ModelUnavailable/TooLarge otherwise."""
    spec, params = validate_settings(body, registry, cfg)
    if not body.inputs:
        raise InvalidInput("inputs is empty", code="empty_inputs", param="inputs")
    retention = body.expires_after or cfg.job_retention_days * 86400
    if len(body.inputs) > cfg.max_inputs_per_job:
        raise TooLarge(
            f"{len(body.inputs)} inputs; at most {cfg.max_inputs_per_job} per job",
            code="too_many_inputs",
            param="inputs",
        )
    limits = ItemLimits(cfg.max_input_chars, cfg.max_custom_id_chars)
    seen: set[str] = set()
    items: list[tuple[str | None, Any]] = []
    for i, item in enumerate(body.inputs):
        try:
            cid = check_custom_id(item.custom_id, limits)
            value = check_item(spec.task, item.input, limits)
        except ItemInvalid as exc:
            param = f"inputs[{i}].{exc.field}"
            message = exc.message.removeprefix(f"{exc.field} ")
            raise InvalidInput(f"{param} {message}", code=exc.code, param=param) from None
        if cid is not None:
            if cid in seen:
                raise InvalidInput(
                    f"inputs[{i}].custom_id {cid!r} is used twice",
                    code="duplicate_custom_id",
                    param=f"inputs[{i}].custom_id",
                )
            seen.add(cid)
        items.append((cid, value))
    values = [v for _, v in items]
    counter = measure(spec) if measure else None
    token_counts = counter(values) if counter else None
    return JobSpec(
        model=spec.name,
        task=spec.task,
        items=items,
        params=params,
        priority=body.priority,
        metadata=dict(body.metadata),
        chunk_size=spec.chunk_size,
        expires_after_seconds=retention,
        # Character length stands in for token length (the API holds no tokenizer);
        # the runner sorts each chunk by exact token length again.
        # Token counts from the model's own tokenizer (torch-free) where it is on disk, so
        # chunks are length-homogeneous; the runner re-sorts each chunk exactly anyway.
        lengths=token_counts if token_counts is not None else char_lengths(values),
        lengths_are_tokens=token_counts is not None,
        bucket_window=cfg.bucket_window_items,
    )
