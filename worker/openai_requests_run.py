"""Running a chunk of an OpenAI batch: each request body becomes runner inputs with its
own params; requests with equal params run together (a file's requests usually share
them), and an embeddings request of several inputs is one item whose inputs are batched
with everyone else's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from core.contracts.openai_requests import native_request
from core.contracts.params import parse_params
from models.results import ItemResult


def _params_key(params: dict[str, Any]) -> bytes:
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS)


def _combine(results: list[ItemResult], many: bool) -> ItemResult:
    """One request's result from its inputs' results: the first failure fails it."""
    failed = next((r for r in results if not r.ok), None)
    if failed is not None:
        return failed
    if not many:
        return results[0]
    usage = {
        "prompt_tokens": sum((r.usage or {}).get("prompt_tokens", 0) for r in results),
        "completion_tokens": 0,
    }
    return ItemResult(
        output=[r.output for r in results],
        usage=usage,
        truncated=any(r.truncated for r in results),
    )


def run_requests(
    runner: Any,
    endpoint: str,
    bodies: Sequence[dict[str, Any]],
    job_params: dict[str, Any],
    should_stop: Callable[[], bool] = lambda: False,
) -> list[ItemResult]:
    """One result per request body, in order (a runner's Cancelled propagates)."""
    task = runner.task
    inputs: list[Any] = []  # runner inputs; several per multi-input embeddings request
    owners: list[int] = []
    groups: dict[bytes, list[int]] = {}
    many: list[bool] = []
    for pos, body in enumerate(bodies):
        value, request_params = native_request(endpoint, body)
        values = value if task == "embed" and isinstance(value, list) else [value]
        many.append(values is value)
        group = groups.setdefault(_params_key({**job_params, **request_params}), [])
        for v in values:
            group.append(len(inputs))
            inputs.append(v)
            owners.append(pos)
    done: list[ItemResult | None] = [None] * len(inputs)
    for key, members in groups.items():
        try:
            params = parse_params(task, orjson.loads(key))
        except ValidationError as exc:  # checked at ingest; kept from failing the chunk
            bad = ItemResult(error_code="invalid_parameter", error_message=str(exc))
            for u in members:
                done[u] = bad
            continue
        for u, result in zip(
            members, runner.run([inputs[u] for u in members], params, should_stop), strict=True
        ):
            done[u] = result
    per_request: list[list[ItemResult]] = [[] for _ in bodies]
    for u, pos in enumerate(owners):
        result = done[u]
        assert result is not None
        per_request[pos].append(result)
    return [_combine(rs, many[pos]) for pos, rs in enumerate(per_request)]
