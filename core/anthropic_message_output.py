"""Rendering a message batch's native result lines as Anthropic result lines:
`{custom_id, result: {type: succeeded, message} | {type: errored, error} | {type: canceled}
| {type: expired}}`, the message shaped as the Messages API's `Message`. Pure.

Stop sequences are applied here (the runner ran without them), so a result can say which
one ended it. Ids derive from the batch id and the request's position, so a download
repeated gives the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from core.openai_batch_output import SERVER_CODES
from core.result_lines import result_error

# The generate runner's finish_reason -> Anthropic's stop_reason (a stop string is found
# here, not by the runner).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _digest(batch_id: str, position: int) -> str:
    return hashlib.blake2b(f"{batch_id}:{position}".encode(), digest_size=12).hexdigest()


def apply_stop_sequences(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text cut at the earliest stop sequence in it, and that sequence (None: none)."""
    found = [(text.find(s), s) for s in stops if s in text]
    if not found:
        return text, None
    at, stop = min(found)
    return text[:at], stop


def message_of(
    *, message_id: str, model: str, output: dict[str, Any], usage: Any, stops: list[str]
) -> dict[str, Any]:
    """A generate output ({text, finish_reason}) as the Messages API's Message."""
    text, stop = apply_stop_sequences(str(output["text"]), stops)
    reason = "stop_sequence" if stop is not None else STOP_REASONS[output["finish_reason"]]
    usage = usage or {}
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "model": model,
        "stop_reason": reason,
        "stop_sequence": stop,
        "usage": {
            "input_tokens": int(usage.get("prompt_tokens", 0)),
            "output_tokens": int(usage.get("completion_tokens", 0)),
        },
    }


def _errored(error: dict[str, Any]) -> dict[str, Any]:
    kind = "api_error" if error["code"] in SERVER_CODES else "invalid_request_error"
    message = f"{error['code']}: {error['message']}"
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": kind, "message": message}},
    }


def render_message_result(
    *,
    batch_id: str,
    position: int,
    model: str,
    body: dict[str, Any],
    result: dict[str, Any],
) -> bytes:
    """The result line of one finished request (its native result line, parsed)."""
    custom_id = result.get("custom_id")
    error = result_error(result)
    if error is not None:
        return orjson.dumps({"custom_id": custom_id, "result": _errored(error)})
    message = message_of(
        message_id="msg_" + _digest(batch_id, position),
        model=model,
        output=result["output"],
        usage=result.get("usage"),
        stops=body.get("stop_sequences") or [],
    )
    return orjson.dumps(
        {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    )


def render_unrun(*, custom_id: str | None, ends_as: str) -> bytes:
    """The result line of a request that never ran: canceled, or expired."""
    kind = "expired" if ends_as == "expired" else "canceled"
    return orjson.dumps({"custom_id": custom_id, "result": {"type": kind}})
