"""Anthropic Message Batches requests: checking one `{custom_id, params}` against what the
generate path can honour, and normalizing its params into the body an OpenAI chat request
normalizes to, so a worker runs it through the same translation (native_request).

What the generate runner cannot do is refused by name (top_k, tools, images, streaming),
never dropped silently. Stop sequences are kept out of the runner and applied when the
result is rendered, so the result can say which one matched. Torch-free.
"""

from __future__ import annotations

import re
from typing import Any

from core.contracts.items import ItemInvalid

# The endpoint recorded on the jobs of a message batch; their requests run as chat bodies.
MESSAGES_ENDPOINT = "/v1/messages"
RUNS_AS = "/v1/chat/completions"
MAX_TOKENS = 32768  # GenerateParams.max_new_tokens' upper bound
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
REQUEST_FIELDS = frozenset({"custom_id", "params"})
_HONOURED = frozenset(
    {"model", "max_tokens", "messages", "system", "temperature", "top_p", "stop_sequences"}
)
# Accepted and dropped: they tag a request but do not change its output.
_IGNORED = frozenset({"metadata", "service_tier"})
# name -> (the values that change nothing, why sluice takes no other)
_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "top_k": ((None,), "the generate runner samples from the whole vocabulary (or top_p)"),
    "stream": ((None, False), "batch results are not streamed"),
    "tools": ((None, []), "sluice does not call tools"),
    "tool_choice": ((None,), "sluice does not call tools"),
    "thinking": ((None,), "sluice has no extended thinking"),
}
_KNOWN = _HONOURED | _IGNORED | _NEUTRAL.keys()
_BLOCK_KEYS = frozenset({"type", "text", "cache_control", "citations"})


def _invalid(field: str, message: str, code: str = "invalid_parameter") -> ItemInvalid:
    return ItemInvalid(code, message, field)


def _number(params: dict[str, Any], name: str, default: float, open_low: bool) -> float:
    value = params.get(name)
    if value is None:
        return default
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (value > 0 if open_low else value >= 0) or value > 1:
        bounds = "in (0, 1]" if open_low else "from 0 to 1"
        raise _invalid(f"params.{name}", f"{name} must be a number {bounds}")
    return float(value)


def _text(value: Any, field: str) -> str:
    """A string, or the text of a list of text blocks (other block types are refused)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _invalid(field, "content must be a string or a non-empty list of text blocks")
    texts = []
    for i, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if isinstance(kind, str) and kind != "text":
            message = f"content blocks of type {kind} are not supported; send text"
            raise _invalid(f"{field}[{i}]", message, "unsupported_input")
        if kind != "text" or not isinstance(block.get("text"), str) or set(block) - _BLOCK_KEYS:
            raise _invalid(f"{field}[{i}]", 'a content block must be {"type": "text", "text": str}')
        texts.append(block["text"])
    return "".join(texts)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _invalid("params.messages", "messages must be a non-empty list")
    out = []
    for i, raw in enumerate(value):
        field = f"params.messages[{i}]"
        if not isinstance(raw, dict) or set(raw) - {"role", "content"}:
            raise _invalid(field, "a message must be {role, content}")
        if raw.get("role") not in ("user", "assistant"):
            raise _invalid(f"{field}.role", "role must be user or assistant")
        out.append({"role": raw["role"], "content": _text(raw.get("content"), f"{field}.content")})
    return out


def _stop_sequences(value: Any) -> list[str]:
    stops = [] if value is None else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 1 <= len(s) <= MAX_STOP_CHARS for s in stops)
    ):
        message = (
            f"stop_sequences must be up to {MAX_STOP_SEQUENCES} strings "
            f"of 1 to {MAX_STOP_CHARS} characters"
        )
        raise _invalid("params.stop_sequences", message)
    return stops


def check_custom_id(value: Any) -> str:
    """The request's custom_id, as Anthropic takes them (1 to 64 of [a-zA-Z0-9_-])."""
    if not isinstance(value, str) or not CUSTOM_ID.fullmatch(value):
        message = "custom_id must be 1 to 64 characters of letters, digits, _ and -"
        raise ItemInvalid("invalid_custom_id", message, "custom_id")
    return value


def check_message_params(params: Any) -> dict[str, Any]:
    """The normalized body of one request's Messages params (model checked by the caller):
    a chat body (system first), with the stop sequences kept for rendering."""
    if not isinstance(params, dict):
        raise _invalid("params", "params must be an object")
    unknown = sorted(params.keys() - _KNOWN)
    if unknown:
        message = f"sluice does not support the parameter {unknown[0]}"
        raise _invalid(f"params.{unknown[0]}", message, "unsupported_parameter")
    for name, (values, why) in _NEUTRAL.items():
        value = params.get(name)
        if not any(type(value) is type(v) and value == v for v in values):
            raise _invalid(
                f"params.{name}", f"{name} is not supported: {why}", "unsupported_parameter"
            )
    if not isinstance(params.get("model"), str):
        raise _invalid("params.model", "model must be a string", "missing_model")
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _invalid("params.max_tokens", "max_tokens is required: an integer")
    if not 1 <= max_tokens <= MAX_TOKENS:
        raise _invalid("params.max_tokens", f"max_tokens must be from 1 to {MAX_TOKENS}")
    messages = _messages(params.get("messages"))
    if params.get("system") is not None:
        messages.insert(0, {"role": "system", "content": _text(params["system"], "params.system")})
    return {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": _number(params, "temperature", 1.0, open_low=False),
        "top_p": _number(params, "top_p", 1.0, open_low=True),
        "stop": [],  # applied at rendering, which then knows the sequence that matched
        "stop_sequences": _stop_sequences(params.get("stop_sequences")),
    }


def message_chars(body: dict[str, Any]) -> int:
    """Characters of text in a normalized body (the size limit and the bucketing key)."""
    return sum(len(m["content"]) for m in body["messages"])


def runs_as(endpoint: str) -> str:
    """The endpoint whose translation (native_request) runs a job's request bodies."""
    return RUNS_AS if endpoint == MESSAGES_ENDPOINT else endpoint
