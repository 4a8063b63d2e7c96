"""OpenAI Batch API request lines: checking one line against its batch's endpoint and model,
and translating the normalized body it keeps into a native runner input and item params.

A line is {"custom_id", "method", "url", "body"}. The normalized body holds only what
sluice acts on, with defaults filled in, so the stored form is small and needs no checks
when it is translated later. Torch-free: the API and the ingest import this module.
"""

from __future__ import annotations

from typing import Any

from core.contracts.items import ItemInvalid, ItemLimits
from core.contracts.params import GenerateParams
from core.errors import shown

ENDPOINT_TASKS: dict[str, str] = {
    "/v1/embeddings": "embed",
    "/v1/chat/completions": "generate",
    "/v1/completions": "generate",
}
MAX_EMBEDDING_INPUTS = 2048
LINE_FIELDS = frozenset({"custom_id", "method", "url", "body"})

_EMBEDDINGS, _CHAT, _COMPLETIONS = "/v1/embeddings", "/v1/chat/completions", "/v1/completions"
_TEXT_FIELD = {_EMBEDDINGS: "body.input", _CHAT: "body.messages", _COMPLETIONS: "body.prompt"}
_MAX_TOKENS = 32768  # GenerateParams.max_new_tokens' upper bound
_CHAT_DEFAULT_MAX_TOKENS = GenerateParams().max_new_tokens
_COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
_SEED_SPAN = 2**63
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_SAMPLING = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "user"}
# Fields that SDKs echo back on assistant messages: fine while empty, unsupported otherwise.
_MESSAGE_EXTRAS = ("tool_calls", "function_call", "refusal", "audio", "annotations")

_ONE = "sluice returns one completion per request"
_NO_STREAM = "batch results are not streamed"
_NO_PENALTY = "sluice applies no frequency or presence penalties"
_NO_LOGPROBS = "sluice does not return log probabilities"
_NO_TOOLS = "sluice does not call tools or functions"
# name -> (the values that change nothing, why sluice takes no other)
_SHARED_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "n": ((None, 1), _ONE),
    "stream": ((None, False), _NO_STREAM),
    "stream_options": ((None,), _NO_STREAM),
    "frequency_penalty": ((None, 0, 0.0), _NO_PENALTY),
    "presence_penalty": ((None, 0, 0.0), _NO_PENALTY),
    "logit_bias": ((None, {}), "sluice does not bias logits"),
}
_CHAT_NEUTRAL = _SHARED_NEUTRAL | {
    "logprobs": ((None, False), _NO_LOGPROBS),
    "top_logprobs": ((None,), _NO_LOGPROBS),
    "response_format": ((None, {"type": "text"}), "sluice generates plain text only"),
    "tools": ((None, []), _NO_TOOLS),
    "functions": ((None, []), _NO_TOOLS),
    "tool_choice": ((None, "none"), _NO_TOOLS),
    "function_call": ((None, "none"), _NO_TOOLS),
}
_COMPLETIONS_NEUTRAL = _SHARED_NEUTRAL | {
    "best_of": ((None, 1), _ONE),
    "logprobs": ((None, 0), _NO_LOGPROBS),
    "echo": ((None, False), "sluice does not echo the prompt"),
    "suffix": ((None,), "sluice does not insert text before a suffix"),
}
# Accepted and dropped: they tag or route a request but do not change its output.
_COMPLETIONS_IGNORED = {"metadata", "service_tier", "safety_identifier", "prompt_cache_key"}
_CHAT_IGNORED = _COMPLETIONS_IGNORED | {"store", "reasoning_effort", "parallel_tool_calls"}
_EMBEDDINGS_KEYS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_CHAT_KEYS = frozenset(
    _SAMPLING | _CHAT_NEUTRAL.keys() | _CHAT_IGNORED | {"messages", "max_completion_tokens"}
)
_COMPLETIONS_KEYS = frozenset(
    _SAMPLING | _COMPLETIONS_NEUTRAL.keys() | _COMPLETIONS_IGNORED | {"prompt"}
)


def _invalid(field: str, message: str, code: str = "invalid_parameter") -> ItemInvalid:
    return ItemInvalid(code, message, field)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_keys(body: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(body.keys() - known)
    if unknown:
        message = f"sluice does not support the parameter {unknown[0]}"
        raise _invalid(f"body.{unknown[0]}", message, "unsupported_parameter")


def _check_neutral(body: dict[str, Any], neutral: dict[str, tuple[tuple[Any, ...], str]]) -> None:
    # Strict types, so that true is not taken for n=1 nor false for logprobs=0.
    for name, (values, why) in neutral.items():
        value = body.get(name)
        if not any(type(value) is type(v) and value == v for v in values):
            message = f"{name} is supported only at its default: {why}"
            raise _invalid(f"body.{name}", message, "unsupported_parameter")


def _check_user(body: dict[str, Any]) -> None:
    if not isinstance(body.get("user", ""), str | None):
        raise _invalid("body.user", "user must be a string")


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    # top_p's low end is open (0 would keep no token), temperature's closed (0 is greedy).
    above_low = _is_number(value) and (value > low if name == "top_p" else value >= low)
    if not above_low or not value <= high:
        bounds = f"in ({low:g}, {high:g}]" if name == "top_p" else f"from {low:g} to {high:g}"
        raise _invalid(f"body.{name}", f"{name} must be a number {bounds}")
    return float(value)


def _max_tokens(body: dict[str, Any], default: int) -> int:
    given = [n for n in ("max_tokens", "max_completion_tokens") if body.get(n) is not None]
    if len(given) > 1:
        raise _invalid("body.max_completion_tokens", "give max_tokens or max_completion_tokens")
    if not given:
        return default
    value = body[given[0]]
    if not _is_int(value) or not 1 <= value <= _MAX_TOKENS:
        raise _invalid(f"body.{given[0]}", f"{given[0]} must be an integer from 1 to {_MAX_TOKENS}")
    return int(value)


def _stop(value: Any) -> list[str]:
    stops = [] if value is None else [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > 4
        or not all(isinstance(s, str) and 1 <= len(s) <= 64 for s in stops)
    ):
        raise _invalid("body.stop", "stop must be a string or up to 4 strings of 1 to 64 chars")
    return stops


def _sampling(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_tokens": _max_tokens(body, default_max_tokens),
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0),
        "stop": _stop(body.get("stop")),
    }
    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed) or not -_SEED_SPAN <= seed < _SEED_SPAN:
            raise _invalid("body.seed", "seed must be a 64-bit integer")
        # The runner seeds with 0..2**63-1; folding keeps each seed reproducible.
        out["seed"] = seed % _SEED_SPAN
    return out


def _texts(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _invalid(field, f"{field[5:]} must be a string or a non-empty list of strings")
    if any(_is_int(v) or isinstance(v, list) for v in value):
        raise _invalid(field, "token arrays are not supported; send text", "unsupported_input")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise _invalid(f"{field}[{i}]", f"{field[5:]}[{i}] must be a string")
    return value


def _embeddings_body(body: dict[str, Any], max_dimensions: int | None) -> dict[str, Any]:
    _check_keys(body, _EMBEDDINGS_KEYS)
    _check_user(body)
    texts = body.get("input")
    if not isinstance(texts, str):
        texts = _texts(texts, "body.input")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            message = f"input has {len(texts)} items; at most {MAX_EMBEDDING_INPUTS}"
            raise _invalid("body.input", message)
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise _invalid("body.encoding_format", 'encoding_format must be "float" or "base64"')
    out: dict[str, Any] = {"input": texts, "encoding_format": encoding or "float"}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not _is_int(dimensions) or dimensions < 1:
            raise _invalid("body.dimensions", "dimensions must be an integer >= 1")
        if max_dimensions is not None and dimensions > max_dimensions:
            raise _invalid("body.dimensions", f"this model has at most {max_dimensions} dimensions")
        out["dimensions"] = dimensions
    return out


def _content(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _invalid(field, "content must be a string or a non-empty list of text parts")
    texts = []
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(kind, str) and kind != "text":
            message = f"content parts of type {kind} are not supported; send text"
            raise _invalid(f"{field}[{i}]", message, "unsupported_input")
        if kind != "text" or set(part) != {"type", "text"} or not isinstance(part["text"], str):
            raise _invalid(f"{field}[{i}]", 'a content part must be {"type": "text", "text": str}')
        texts.append(part["text"])
    return "".join(texts)


def _message(raw: Any, field: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _invalid(field, "a message must be an object")
    role = raw.get("role")
    if role in ("tool", "function"):
        raise _invalid(f"{field}.role", f"{role} messages are not supported", "unsupported_input")
    if not isinstance(role, str) or role not in _ROLES:
        raise _invalid(f"{field}.role", "role must be system, developer, user or assistant")
    for name in _MESSAGE_EXTRAS:
        if raw.get(name) not in (None, []):
            message = f"{name} in messages is not supported; send text"
            raise _invalid(f"{field}.{name}", message, "unsupported_input")
    unknown = sorted(raw.keys() - {"role", "content", "name", *_MESSAGE_EXTRAS})
    if unknown:
        message = f"unknown message field {unknown[0]}"
        raise _invalid(f"{field}.{unknown[0]}", message, "unsupported_parameter")
    if not isinstance(raw.get("name", ""), str):
        raise _invalid(f"{field}.name", "name must be a string")
    return {"role": _ROLES[role], "content": _content(raw.get("content"), f"{field}.content")}


def _chat_body(body: dict[str, Any]) -> dict[str, Any]:
    _check_keys(body, _CHAT_KEYS)
    _check_user(body)
    _check_neutral(body, _CHAT_NEUTRAL)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("body.messages", "messages must be a non-empty list")
    normalized = [_message(m, f"body.messages[{i}]") for i, m in enumerate(messages)]
    return {"messages": normalized} | _sampling(body, _CHAT_DEFAULT_MAX_TOKENS)


def _completions_body(body: dict[str, Any]) -> dict[str, Any]:
    _check_keys(body, _COMPLETIONS_KEYS)
    _check_user(body)
    _check_neutral(body, _COMPLETIONS_NEUTRAL)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        prompts = _texts(prompt, "body.prompt")
        if len(prompts) > 1:
            raise _invalid("body.prompt", "one prompt per request", "unsupported_input")
        prompt = prompts[0]
    return {"prompt": prompt} | _sampling(body, _COMPLETIONS_DEFAULT_MAX_TOKENS)


def _check_envelope(endpoint: str, model: str, line: dict[str, Any], limits: ItemLimits) -> str:
    unknown = sorted(line.keys() - LINE_FIELDS)
    if unknown:
        raise ItemInvalid("unknown_field", f"unknown field {shown(unknown[0])}", unknown[0])
    if "custom_id" not in line:
        raise ItemInvalid("missing_custom_id", 'line has no "custom_id"', "custom_id")
    custom_id = line["custom_id"]
    if not isinstance(custom_id, str) or not custom_id:
        raise ItemInvalid("invalid_custom_id", "custom_id must be a non-empty string", "custom_id")
    if len(custom_id) > limits.max_custom_id_chars:
        message = f"custom_id is longer than {limits.max_custom_id_chars} characters"
        raise ItemInvalid("invalid_custom_id", message, "custom_id")
    if line.get("method") != "POST":
        raise ItemInvalid("invalid_method", 'method must be "POST"', "method")
    url = line.get("url")
    if url != endpoint:
        message = f"url {url} does not match the batch's endpoint {endpoint}"
        raise ItemInvalid("mismatched_url", message, "url")
    body = line.get("body")
    if not isinstance(body, dict):
        raise ItemInvalid("invalid_body", "body must be an object", "body")
    if not isinstance(body.get("model"), str):
        raise ItemInvalid("missing_model", "body has no model", "body.model")
    if body["model"] != model:
        message = f"every request of a batch must use one model: this line has {body['model']}, "
        raise ItemInvalid("mismatched_model", message + f"the batch {model}", "body.model")
    return custom_id


def check_request_line(
    endpoint: str,
    model: str,
    line: dict[str, Any],
    limits: ItemLimits,
    max_dimensions: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """(custom_id, normalized body) of one OpenAI batch line; raises ItemInvalid."""
    if endpoint not in ENDPOINT_TASKS:
        raise ValueError(f"unknown endpoint {endpoint}")
    custom_id = _check_envelope(endpoint, model, line, limits)
    body = line["body"]
    if endpoint == _EMBEDDINGS:
        normalized = _embeddings_body(body, max_dimensions)
    elif endpoint == _CHAT:
        normalized = _chat_body(body)
    else:
        normalized = _completions_body(body)
    size = request_length(endpoint, normalized)
    if size > limits.max_input_chars:
        message = f"input has {size} characters; at most {limits.max_input_chars}"
        raise ItemInvalid("input_too_large", message, _TEXT_FIELD[endpoint])
    return custom_id, normalized


def native_request(endpoint: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(runner input, per-item params) of a normalized body (as check_request_line returns it)."""
    if endpoint == _EMBEDDINGS:
        return body["input"], {"dimensions": body["dimensions"]} if "dimensions" in body else {}
    if endpoint not in (_CHAT, _COMPLETIONS):
        raise ValueError(f"unknown endpoint {endpoint}")
    text_key = "messages" if endpoint == _CHAT else "prompt"
    value = {text_key: body[text_key]} | ({"seed": body["seed"]} if "seed" in body else {})
    params = {"max_new_tokens": body["max_tokens"]}
    params |= {k: body[k] for k in ("temperature", "top_p", "stop")}
    return value, params


def request_length(endpoint: str, body: dict[str, Any]) -> int:
    """Characters of text in a normalized body (a sort key for length bucketing)."""
    if endpoint == _EMBEDDINGS:
        texts = body["input"]
        return len(texts) if isinstance(texts, str) else sum(len(t) for t in texts)
    if endpoint == _CHAT:
        return sum(len(m["content"]) for m in body["messages"])
    if endpoint == _COMPLETIONS:
        return len(body["prompt"])
    raise ValueError(f"unknown endpoint {endpoint}")
