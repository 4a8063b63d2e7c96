"""Anthropic Message Batches requests and results, as pure functions: what a request's
params normalize to or why they are refused, and how a generate output becomes the
client's Message (parsed by the official `anthropic` client's own types)."""

from __future__ import annotations

import orjson
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse

from core.anthropic_message_output import render_message_result, render_unrun
from core.contracts.anthropic_requests import check_custom_id, check_message_params, runs_as
from core.contracts.items import ItemInvalid
from core.contracts.openai_requests import native_request


def _params(**extra):
    return {
        "model": "m",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_params_normalize_to_a_chat_body_with_system_first():
    body = check_message_params(
        _params(
            system=[{"type": "text", "text": "be brief"}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": "c"},
            ],
            temperature=0,
            top_p=0.5,
            stop_sequences=["END"],
            metadata={"user_id": "u1"},
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c"},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (8, 0.0, 0.5)
    # Stops are kept from the runner (rendering applies them, knowing which matched).
    assert body["stop"] == [] and body["stop_sequences"] == ["END"]
    value, params = native_request(runs_as("/v1/messages"), body)
    assert value == {"messages": body["messages"]}
    assert params == {"max_new_tokens": 8, "temperature": 0.0, "top_p": 0.5, "stop": []}


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        (_params(top_k=5), "params.top_k", "unsupported_parameter"),
        (_params(stream=True), "params.stream", "unsupported_parameter"),
        (_params(tools=[{"name": "x"}]), "params.tools", "unsupported_parameter"),
        (_params(thinking={"type": "enabled"}), "params.thinking", "unsupported_parameter"),
        (_params(frequency=1), "params.frequency", "unsupported_parameter"),
        (_params(max_tokens=None), "params.max_tokens", "invalid_parameter"),
        (_params(max_tokens=0), "params.max_tokens", "invalid_parameter"),
        (_params(temperature=1.5), "params.temperature", "invalid_parameter"),
        (_params(top_p=0), "params.top_p", "invalid_parameter"),
        (_params(stop_sequences=["a"] * 5), "params.stop_sequences", "invalid_parameter"),
        (_params(messages=[]), "params.messages", "invalid_parameter"),
        (
            _params(messages=[{"role": "system", "content": "x"}]),
            "params.messages[0].role",
            "invalid_parameter",
        ),
        (
            _params(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
            "params.messages[0].content[0]",
            "unsupported_input",
        ),
        (_params(model=3), "params.model", "missing_model"),
    ],
)
def test_what_the_generate_path_cannot_honour_is_refused_by_name(params, field, code):
    with pytest.raises(ItemInvalid) as refused:
        check_message_params(params)
    assert (refused.value.field, refused.value.code) == (field, code)


@pytest.mark.parametrize("custom_id", ["", "a" * 65, "has space", 7, None])
def test_custom_ids_are_anthropics(custom_id):
    with pytest.raises(ItemInvalid):
        check_custom_id(custom_id)
    assert check_custom_id("req_1-A") == "req_1-A"


def _parse(line: bytes) -> MessageBatchIndividualResponse:
    return MessageBatchIndividualResponse.model_validate(orjson.loads(line))


@pytest.mark.parametrize(
    ("text", "finish", "stops", "want"),
    [
        ("hello world", "stop", [], ("hello world", "end_turn", None)),
        ("hello world", "length", [], ("hello world", "max_tokens", None)),
        ("hello world", "length", ["wor", "lo"], ("hel", "stop_sequence", "lo")),
        ("hello world", "stop", ["xyz"], ("hello world", "end_turn", None)),
    ],
)
def test_a_generate_output_becomes_the_clients_message(text, finish, stops, want):
    result = {
        "custom_id": "r1",
        "index": 0,
        "output": {"text": text, "finish_reason": finish},
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    line = render_message_result(
        batch_id="msgbatch_x", position=2, model="m", body={"stop_sequences": stops}, result=result
    )
    parsed = _parse(line)
    assert parsed.custom_id == "r1" and parsed.result.type == "succeeded"
    message = parsed.result.message
    assert (message.content[0].text, message.stop_reason, message.stop_sequence) == want
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    assert message.role == "assistant" and message.model == "m"
    again = render_message_result(
        batch_id="msgbatch_x", position=2, model="m", body={"stop_sequences": stops}, result=result
    )
    assert again == line  # ids derive from the batch and position: a download repeats


def test_errors_and_unrun_requests_parse_as_the_clients_results():
    failed = {"custom_id": "r", "index": 0, "error": {"code": "input_too_long", "message": "no"}}
    errored = _parse(
        render_message_result(batch_id="b", position=0, model="m", body={}, result=failed)
    )
    assert errored.result.type == "errored"
    assert errored.result.error.error.type == "invalid_request_error"
    assert "input_too_long" in errored.result.error.error.message
    crashed = {**failed, "error": {"code": "out_of_memory", "message": "oom"}}
    server = _parse(
        render_message_result(batch_id="b", position=0, model="m", body={}, result=crashed)
    )
    assert server.result.error.error.type == "api_error"
    assert _parse(render_unrun(custom_id="r", ends_as="cancelled")).result.type == "canceled"
    assert _parse(render_unrun(custom_id="r", ends_as="expired")).result.type == "expired"
