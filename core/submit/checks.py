"""Checking what a submission asks for, before anything is written: the model, its task
params, metadata, its webhook, and each inline item against the task's contract."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from core.config import Settings
from core.contracts.images import ImageLimits
from core.contracts.items import ItemInvalid, ItemLimits, check_custom_id, check_item
from core.contracts.params import parse_params
from core.contracts.spec import ModelSpec
from core.errors import InvalidInput, ModelUnavailable, TooLarge, shown
from core.webhooks.targets import WebhookTarget, check_webhook


class InlineItem(Protocol):
    """One inline input as a request carries it."""

    custom_id: str | None
    input: Any


def item_limits(cfg: Settings) -> ItemLimits:
    """The size limits on one item, from the settings."""
    return ItemLimits(cfg.max_input_chars, cfg.max_custom_id_chars)


def image_limits(cfg: Settings) -> ImageLimits:
    """The limits on one image, from the settings."""
    return ImageLimits(cfg.max_image_bytes, cfg.max_image_pixels)


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


def check_webhook_option(cfg: Settings, webhook: Mapping[str, Any] | None) -> WebhookTarget | None:
    """The webhook a request names ({url, secret}), checked, or None."""
    if webhook is None:
        return None
    return check_webhook(
        webhook.get("url", ""), webhook.get("secret", ""), allow_private=cfg.webhook_allow_private
    )


def check_model(registry: dict[str, ModelSpec], model: str) -> ModelSpec:
    """The registered model of that name; ModelUnavailable otherwise."""
    spec = registry.get(model)
    if spec is None:
        raise ModelUnavailable(
            f"unknown model {shown(model)}; GET /v1/models lists them", param="model"
        )
    return spec


def check_params(spec: ModelSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The task params, validated against the task and the model's limits."""
    try:
        parsed = parse_params(spec.task, params).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"params.{where}: {first['msg']}", code="invalid_params", param=f"params.{where}"
        ) from exc
    if parsed.get("max_new_tokens", 0) >= spec.max_length:
        raise InvalidInput(
            f"params.max_new_tokens: {spec.name} takes {spec.max_length} tokens in all, prompt "
            "included",
            code="invalid_params",
            param="params.max_new_tokens",
        )
    target = (parsed.get("explain") or {}).get("target", "top")
    labels = spec.label_names()
    if target != "top" and labels is not None and target not in labels:
        raise InvalidInput(
            f"params.explain.target: {spec.name} has no label {shown(target)} (its labels: "
            f"{', '.join(labels[:20])}{', ...' if len(labels) > 20 else ''})",
            code="invalid_params",
            param="params.explain.target",
        )
    width = spec.output_size()
    if parsed.get("dimensions") and width and parsed["dimensions"] > width:
        raise InvalidInput(
            f"params.dimensions: {spec.name} gives {width} dimensions, asked for "
            f"{parsed['dimensions']}",
            code="invalid_params",
            param="params.dimensions",
        )
    return parsed


def check_inline_items(
    spec: ModelSpec, inputs: Iterable[InlineItem], count: int, cfg: Settings
) -> list[tuple[str | None, Any]]:
    """(custom_id, input in the runner's shape) of every inline item, in order; the first
    invalid item is an InvalidInput naming it (`inputs[i].field`)."""
    if not count:
        raise InvalidInput("inputs is empty", code="empty_inputs", param="inputs")
    if count > cfg.max_inputs_per_job:
        raise TooLarge(
            f"{count} inputs; at most {cfg.max_inputs_per_job} per job",
            code="too_many_inputs",
            param="inputs",
        )
    limits = item_limits(cfg)
    seen: set[str] = set()
    items: list[tuple[str | None, Any]] = []
    for i, item in enumerate(inputs):
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
                    f"inputs[{i}].custom_id {shown(cid)} is used twice",
                    code="duplicate_custom_id",
                    param=f"inputs[{i}].custom_id",
                )
            seen.add(cid)
        items.append((cid, value))
    return items
