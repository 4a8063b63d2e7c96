"""OpenAI batch lines: each endpoint's valid lines, their normalized bodies and native
translations (re-checked by core.contracts.params), and every rejection with its code and field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.contracts.items import ItemInvalid, ItemLimits
from core.contracts.openai_requests import (
    ENDPOINT_TASKS,
    MAX_EMBEDDING_INPUTS,
    check_request_line,
    native_request,
    request_length,
)
from core.contracts.params import check_input, parse_params

EMB, CHAT, COMP = "/v1/embeddings", "/v1/chat/completions", "/v1/completions"
LIMITS = ItemLimits(max_input_chars=100, max_custom_id_chars=16)
MODEL = {EMB: "tiny-embed", CHAT: "tiny-gen", COMP: "tiny-gen"}
BODIES: dict[str, dict[str, Any]] = {
    EMB: {"input": "hello"},
    CHAT: {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
    COMP: {"prompt": "Once upon", "max_tokens": 20},
}
DROP = object()


def _line(endpoint: str, changes: dict[str, Any] | None = None, /, **top: Any) -> dict[str, Any]:
    """A valid line of the endpoint, with body keys and top-level keys replaced (DROP removes)."""
    merged = {"model": MODEL[endpoint], **copy.deepcopy(BODIES[endpoint]), **(changes or {})}
    line = {"custom_id": "req-1", "method": "POST", "url": endpoint, "body": merged, **top}
    for d in (line, merged):
        for key in [k for k, v in d.items() if v is DROP]:
            del d[key]
    return line


def _check(endpoint: str, line: dict[str, Any], **kw: Any) -> dict[str, Any]:
    custom_id, body = check_request_line(endpoint, MODEL[endpoint], line, LIMITS, **kw)
    assert custom_id == line["custom_id"]
    return body


def _rejects(endpoint: str, line: dict[str, Any], **kw: Any) -> ItemInvalid:
    with pytest.raises(ItemInvalid) as info:
        check_request_line(endpoint, MODEL[endpoint], line, LIMITS, **kw)
    return info.value


def _round_trip(endpoint: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    value, params = native_request(endpoint, body)
    task = ENDPOINT_TASKS[endpoint]
    for item in [value] if isinstance(value, str | dict) else value:
        assert check_input(task, item) == item
    parse_params(task, params)
    return value, params


def test_embeddings_line() -> None:
    body = _check(EMB, _line(EMB))
    assert body == {"input": "hello", "encoding_format": "float"}
    assert _round_trip(EMB, body) == ("hello", {})
    assert request_length(EMB, body) == 5


def test_embeddings_list_base64_dimensions_and_user() -> None:
    line = _line(
        EMB, {"input": ["ab", "cde"], "encoding_format": "base64", "dimensions": 8, "user": "u"}
    )
    body = _check(EMB, line, max_dimensions=8)
    assert body == {"input": ["ab", "cde"], "encoding_format": "base64", "dimensions": 8}
    value, params = _round_trip(EMB, body)
    assert (value, params) == (["ab", "cde"], {"dimensions": 8})
    assert parse_params("embed", params).model_dump()["dimensions"] == 8
    assert request_length(EMB, body) == 5


def test_embeddings_max_inputs_accepted() -> None:
    line = _line(EMB, {"input": ["a"] * MAX_EMBEDDING_INPUTS})
    roomy = ItemLimits(max_input_chars=MAX_EMBEDDING_INPUTS, max_custom_id_chars=16)
    _, body = check_request_line(EMB, MODEL[EMB], line, roomy)
    assert len(body["input"]) == MAX_EMBEDDING_INPUTS


def test_chat_line_defaults() -> None:
    body = _check(CHAT, _line(CHAT, {"max_tokens": DROP}))
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 128,
        "temperature": 1.0,
        "top_p": 1.0,
        "stop": [],
    }
    value, params = _round_trip(CHAT, body)
    assert value == {"messages": [{"role": "user", "content": "hi"}]}
    assert params == {"max_new_tokens": 128, "temperature": 1.0, "top_p": 1.0, "stop": []}


def test_chat_line_full() -> None:
    messages = [
        {"role": "developer", "content": "Be brief.", "name": "ops"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "ok", "tool_calls": None, "refusal": None},
        {"role": "user", "content": "again"},
    ]
    extra = {"temperature": 0, "top_p": 0.5, "seed": -1, "stop": "\n", "user": "u"}
    changes = {"messages": messages, "max_tokens": DROP, "max_completion_tokens": 7, **extra}
    body = _check(CHAT, _line(CHAT, changes))
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (7, 0.0, 0.5)
    assert body["stop"] == ["\n"] and body["seed"] == 2**63 - 1
    assert isinstance(body["temperature"], float)
    value, params = _round_trip(CHAT, body)
    assert value == {"messages": body["messages"], "seed": 2**63 - 1}
    assert params == {"max_new_tokens": 7, "temperature": 0.0, "top_p": 0.5, "stop": ["\n"]}
    assert request_length(CHAT, body) == len("Be brief.") + 2 + 2 + 5


@pytest.mark.parametrize(
    ("seed", "stored"), [(0, 0), (42, 42), (-1, 2**63 - 1), (-(2**63), 0), (2**63 - 1, 2**63 - 1)]
)
def test_seed_mapping(seed: int, stored: int) -> None:
    assert _check(COMP, _line(COMP, {"seed": seed}))["seed"] == stored


def test_neutral_and_ignored_chat_fields_are_dropped() -> None:
    neutral = {
        "n": 1,
        "stream": False,
        "logprobs": False,
        "top_logprobs": None,
        "frequency_penalty": 0,
        "presence_penalty": 0.0,
        "response_format": {"type": "text"},
        "tools": [],
        "functions": None,
        "tool_choice": "none",
        "function_call": None,
        "logit_bias": {},
        "parallel_tool_calls": True,
        "stream_options": None,
        "stop": None,
        "seed": None,
        "temperature": None,
    }
    ignored = {
        "user": "u",
        "metadata": {"k": "v"},
        "store": True,
        "service_tier": "auto",
        "safety_identifier": "s",
        "prompt_cache_key": "p",
        "reasoning_effort": "low",
    }
    body = _check(CHAT, _line(CHAT, {**neutral, **ignored}))
    assert body == _check(CHAT, _line(CHAT))
    assert set(body) == {"messages", "max_tokens", "temperature", "top_p", "stop"}


def test_completions_line_defaults() -> None:
    body = _check(COMP, _line(COMP, {"max_tokens": DROP}))
    assert body == {
        "prompt": "Once upon",
        "max_tokens": 16,
        "temperature": 1.0,
        "top_p": 1.0,
        "stop": [],
    }
    value, params = _round_trip(COMP, body)
    assert value == {"prompt": "Once upon"}
    assert params["max_new_tokens"] == 16
    assert request_length(COMP, body) == 9


def test_completions_list_prompt_neutral_and_ignored() -> None:
    extra = {"n": 1, "best_of": None, "logprobs": 0, "echo": False, "suffix": None, "user": "u"}
    extra |= {"metadata": {}, "stop": ["a", "b", "c", "d"], "seed": 3, "max_tokens": 32768}
    body = _check(COMP, _line(COMP, {"prompt": ["one"], **extra}))
    assert body == {
        "prompt": "one",
        "max_tokens": 32768,
        "temperature": 1.0,
        "top_p": 1.0,
        "stop": ["a", "b", "c", "d"],
        "seed": 3,
    }
    value, params = _round_trip(COMP, body)
    assert value == {"prompt": "one", "seed": 3}
    assert params["max_new_tokens"] == 32768 and params["stop"] == ["a", "b", "c", "d"]


def _messages(*messages: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}, *messages]}


ERRORS = [
    # envelope, in the order it is checked
    (EMB, _line(EMB, extra=1), "unknown_field", "extra"),
    (EMB, _line(EMB, custom_id=DROP), "missing_custom_id", "custom_id"),
    (EMB, _line(EMB, custom_id=7), "invalid_custom_id", "custom_id"),
    (EMB, _line(EMB, custom_id=None), "invalid_custom_id", "custom_id"),
    (EMB, _line(EMB, custom_id=""), "invalid_custom_id", "custom_id"),
    (EMB, _line(EMB, custom_id="x" * 17), "invalid_custom_id", "custom_id"),
    (EMB, _line(EMB, method=DROP), "invalid_method", "method"),
    (EMB, _line(EMB, method="post"), "invalid_method", "method"),
    (EMB, _line(EMB, method="GET"), "invalid_method", "method"),
    (EMB, _line(EMB, url=DROP), "mismatched_url", "url"),
    (CHAT, _line(CHAT, url=COMP), "mismatched_url", "url"),
    (EMB, _line(EMB, body=DROP), "invalid_body", "body"),
    (EMB, _line(EMB, body=[]), "invalid_body", "body"),
    (EMB, _line(EMB, {"model": DROP}), "missing_model", "body.model"),
    (EMB, _line(EMB, {"model": 3}), "missing_model", "body.model"),
    (EMB, _line(EMB, {"model": "other"}), "mismatched_model", "body.model"),
    # embeddings
    (EMB, _line(EMB, {"input": DROP}), "invalid_parameter", "body.input"),
    (EMB, _line(EMB, {"input": None}), "invalid_parameter", "body.input"),
    (EMB, _line(EMB, {"input": 5}), "invalid_parameter", "body.input"),
    (EMB, _line(EMB, {"input": []}), "invalid_parameter", "body.input"),
    (EMB, _line(EMB, {"input": ["a", None]}), "invalid_parameter", "body.input[1]"),
    (EMB, _line(EMB, {"input": ["a"] * 2049}), "invalid_parameter", "body.input"),
    (EMB, _line(EMB, {"input": [1, 2, 3]}), "unsupported_input", "body.input"),
    (EMB, _line(EMB, {"input": [[1, 2], [3]]}), "unsupported_input", "body.input"),
    (EMB, _line(EMB, {"encoding_format": "int8"}), "invalid_parameter", "body.encoding_format"),
    (EMB, _line(EMB, {"dimensions": 0}), "invalid_parameter", "body.dimensions"),
    (EMB, _line(EMB, {"dimensions": True}), "invalid_parameter", "body.dimensions"),
    (EMB, _line(EMB, {"dimensions": "8"}), "invalid_parameter", "body.dimensions"),
    (EMB, _line(EMB, {"dimensions": 9}), "invalid_parameter", "body.dimensions"),
    (EMB, _line(EMB, {"user": 5}), "invalid_parameter", "body.user"),
    (EMB, _line(EMB, {"truncate": True}), "unsupported_parameter", "body.truncate"),
    (EMB, _line(EMB, {"input": "x" * 101}), "input_too_large", "body.input"),
    (EMB, _line(EMB, {"input": ["x" * 50, "x" * 51]}), "input_too_large", "body.input"),
    # chat: messages
    (CHAT, _line(CHAT, {"messages": DROP}), "invalid_parameter", "body.messages"),
    (CHAT, _line(CHAT, {"messages": []}), "invalid_parameter", "body.messages"),
    (CHAT, _line(CHAT, {"messages": "hi"}), "invalid_parameter", "body.messages"),
    (CHAT, _line(CHAT, _messages("hi")), "invalid_parameter", "body.messages[1]"),
    (CHAT, _line(CHAT, _messages({"content": "x"})), "invalid_parameter", "body.messages[1].role"),
    (
        CHAT,
        _line(CHAT, _messages({"role": "robot", "content": "x"})),
        "invalid_parameter",
        "body.messages[1].role",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "tool", "content": "x", "tool_call_id": "c"})),
        "unsupported_input",
        "body.messages[1].role",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "function", "content": "x", "name": "f"})),
        "unsupported_input",
        "body.messages[1].role",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "assistant", "content": None, "tool_calls": [{"id": 1}]})),
        "unsupported_input",
        "body.messages[1].tool_calls",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "assistant", "content": None})),
        "invalid_parameter",
        "body.messages[1].content",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user"})),
        "invalid_parameter",
        "body.messages[1].content",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": []})),
        "invalid_parameter",
        "body.messages[1].content",
    ),
    (
        CHAT,
        _line(
            CHAT,
            _messages(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": "http://x"}},
                    ],
                }
            ),
        ),
        "unsupported_input",
        "body.messages[1].content[1]",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": [{"type": "text", "text": 5}]})),
        "invalid_parameter",
        "body.messages[1].content[0]",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": [{"type": 5, "text": "x"}]})),
        "invalid_parameter",
        "body.messages[1].content[0]",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": ["x"]})),
        "invalid_parameter",
        "body.messages[1].content[0]",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": "x", "name": 5})),
        "invalid_parameter",
        "body.messages[1].name",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": "x", "weight": 1})),
        "unsupported_parameter",
        "body.messages[1].weight",
    ),
    (
        CHAT,
        _line(CHAT, _messages({"role": "user", "content": "x" * 99})),
        "input_too_large",
        "body.messages",
    ),
    # chat: sampling
    (CHAT, _line(CHAT, {"max_tokens": 0}), "invalid_parameter", "body.max_tokens"),
    (CHAT, _line(CHAT, {"max_tokens": 32769}), "invalid_parameter", "body.max_tokens"),
    (CHAT, _line(CHAT, {"max_tokens": "20"}), "invalid_parameter", "body.max_tokens"),
    (CHAT, _line(CHAT, {"max_tokens": True}), "invalid_parameter", "body.max_tokens"),
    (CHAT, _line(CHAT, {"max_tokens": 2.0}), "invalid_parameter", "body.max_tokens"),
    (
        CHAT,
        _line(CHAT, {"max_tokens": DROP, "max_completion_tokens": 0}),
        "invalid_parameter",
        "body.max_completion_tokens",
    ),
    (
        CHAT,
        _line(CHAT, {"max_completion_tokens": 5}),
        "invalid_parameter",
        "body.max_completion_tokens",
    ),
    (CHAT, _line(CHAT, {"temperature": -0.1}), "invalid_parameter", "body.temperature"),
    (CHAT, _line(CHAT, {"temperature": 2.01}), "invalid_parameter", "body.temperature"),
    (CHAT, _line(CHAT, {"temperature": "1"}), "invalid_parameter", "body.temperature"),
    (CHAT, _line(CHAT, {"temperature": True}), "invalid_parameter", "body.temperature"),
    (CHAT, _line(CHAT, {"top_p": 0}), "invalid_parameter", "body.top_p"),
    (CHAT, _line(CHAT, {"top_p": 1.5}), "invalid_parameter", "body.top_p"),
    (CHAT, _line(CHAT, {"seed": 2**63}), "invalid_parameter", "body.seed"),
    (CHAT, _line(CHAT, {"seed": -(2**63) - 1}), "invalid_parameter", "body.seed"),
    (CHAT, _line(CHAT, {"seed": 1.5}), "invalid_parameter", "body.seed"),
    (CHAT, _line(CHAT, {"seed": True}), "invalid_parameter", "body.seed"),
    (CHAT, _line(CHAT, {"stop": ["a"] * 5}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"stop": ""}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"stop": [""]}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"stop": "x" * 65}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"stop": ["a", 1]}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"stop": 5}), "invalid_parameter", "body.stop"),
    (CHAT, _line(CHAT, {"user": ["u"]}), "invalid_parameter", "body.user"),
    # chat: parameters only at their defaults, and unknown ones
    *[
        (CHAT, _line(CHAT, {name: value}), "unsupported_parameter", f"body.{name}")
        for name, value in [
            ("n", 2),
            ("n", True),
            ("stream", True),
            ("logprobs", True),
            ("top_logprobs", 2),
            ("frequency_penalty", 0.5),
            ("presence_penalty", -1),
            ("response_format", {"type": "json_object"}),
            ("tools", [{"type": "function", "function": {"name": "f"}}]),
            ("functions", [{"name": "f"}]),
            ("tool_choice", "auto"),
            ("function_call", "auto"),
            ("logit_bias", {"50256": -100}),
            ("stream_options", {"include_usage": True}),
            ("modalities", ["text"]),
            ("best_of", 1),
            ("suffix", None),
        ]
    ],
    # completions
    (COMP, _line(COMP, {"prompt": DROP}), "invalid_parameter", "body.prompt"),
    (COMP, _line(COMP, {"prompt": []}), "invalid_parameter", "body.prompt"),
    (COMP, _line(COMP, {"prompt": 5}), "invalid_parameter", "body.prompt"),
    (COMP, _line(COMP, {"prompt": [None]}), "invalid_parameter", "body.prompt[0]"),
    (COMP, _line(COMP, {"prompt": ["a", "b"]}), "unsupported_input", "body.prompt"),
    (COMP, _line(COMP, {"prompt": [1, 2]}), "unsupported_input", "body.prompt"),
    (COMP, _line(COMP, {"prompt": [[1, 2]]}), "unsupported_input", "body.prompt"),
    (COMP, _line(COMP, {"max_tokens": 0}), "invalid_parameter", "body.max_tokens"),
    (COMP, _line(COMP, {"top_p": -1}), "invalid_parameter", "body.top_p"),
    (COMP, _line(COMP, {"seed": "1"}), "invalid_parameter", "body.seed"),
    (COMP, _line(COMP, {"stop": ["ok", ""]}), "invalid_parameter", "body.stop"),
    (COMP, _line(COMP, {"prompt": "x" * 101}), "input_too_large", "body.prompt"),
    *[
        (COMP, _line(COMP, {name: value}), "unsupported_parameter", f"body.{name}")
        for name, value in [
            ("n", 3),
            ("best_of", 2),
            ("stream", True),
            ("logprobs", 5),
            ("logprobs", False),
            ("echo", True),
            ("suffix", "end"),
            ("frequency_penalty", 1.0),
            ("presence_penalty", 0.1),
            ("logit_bias", {"1": 1}),
            ("stream_options", {}),
            ("max_completion_tokens", 5),
            ("messages", []),
            ("reasoning_effort", "low"),
            ("store", False),
        ]
    ],
]


@pytest.mark.parametrize(
    ("endpoint", "line", "code", "field"), ERRORS, ids=[f"{e[2]}-{e[3]}" for e in ERRORS]
)
def test_rejected(endpoint: str, line: dict[str, Any], code: str, field: str) -> None:
    error = _rejects(endpoint, line, max_dimensions=8)
    assert (error.code, error.field) == (code, field), error.message
    assert error.message


def test_base_lines_are_valid() -> None:
    for endpoint in (EMB, CHAT, COMP):
        _check(endpoint, _line(endpoint), max_dimensions=8)


def test_envelope_checks_run_in_order() -> None:
    line = _line(CHAT, {"model": "x"}, extra=1, custom_id=DROP, method="GET", url=EMB)
    assert _rejects(CHAT, line).code == "unknown_field"
    del line["extra"]
    assert _rejects(CHAT, line).code == "missing_custom_id"
    line["custom_id"] = "c"
    assert _rejects(CHAT, line).code == "invalid_method"
    line["method"] = "POST"
    assert _rejects(CHAT, line).code == "mismatched_url"
    line["url"] = CHAT
    assert _rejects(CHAT, line).code == "mismatched_model"


def test_messages_name_both_sides() -> None:
    url = _rejects(CHAT, _line(CHAT, url=EMB)).message
    assert url == f"url {EMB} does not match the batch's endpoint {CHAT}"
    model = _rejects(CHAT, _line(CHAT, {"model": "big-gen"})).message
    assert model == (
        "every request of a batch must use one model: this line has big-gen, the batch tiny-gen"
    )
    tokens = _rejects(EMB, _line(EMB, {"input": [[1]]})).message
    assert "token arrays are not supported" in tokens
    n = _rejects(CHAT, _line(CHAT, {"n": 2})).message
    assert n == "n is supported only at its default: sluice returns one completion per request"


def test_size_limit_boundary_counts_text_only() -> None:
    _check(EMB, _line(EMB, {"input": ["x" * 50, "y" * 50]}))
    _check(COMP, _line(COMP, {"prompt": "x" * 100}))
    # Roles and names do not count; only the contents.
    messages = [
        {"role": "system", "content": "s" * 40, "name": "n" * 50},
        {"role": "user", "content": [{"type": "text", "text": "u" * 60}]},
    ]
    body = _check(CHAT, _line(CHAT, {"messages": messages}))
    assert request_length(CHAT, body) == 100


def test_dimensions_unbounded_without_a_model_maximum() -> None:
    assert _check(EMB, _line(EMB, {"dimensions": 4096}))["dimensions"] == 4096
    assert _rejects(EMB, _line(EMB, {"dimensions": 4096}), max_dimensions=384).code == (
        "invalid_parameter"
    )


def test_check_does_not_mutate_the_line() -> None:
    line = _line(CHAT, {"messages": [{"role": "developer", "content": "x", "name": "n"}]})
    before = copy.deepcopy(line)
    _check(CHAT, line)
    assert line == before


def test_unknown_endpoint_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_request_line("/v1/responses", "m", _line(EMB), LIMITS)
    with pytest.raises(ValueError):
        native_request("/v1/responses", {})
    with pytest.raises(ValueError):
        request_length("/v1/responses", {})
