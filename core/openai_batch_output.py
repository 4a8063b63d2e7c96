"""Rendering a batch's results as OpenAI batch output and error lines, with response bodies
shaped like OpenAI's synchronous responses. Pure: the finalize task feeds it item by item.

Ids are derived from the batch id and the item's index, so a finalize that runs again after
a crash writes the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import orjson

from core.result_lines import result_error

# Failures that are the server's, not the request's (HTTP 500 rather than 400).
SERVER_CODES = frozenset(
    {"inference_error", "out_of_memory", "internal_error", "attempts_exhausted"}
)
UNRUN_ERRORS = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": ("batch_cancelled", "The batch was cancelled before this request ran."),
}


def _digest(batch_id: str, index: int, salt: str) -> str:
    return hashlib.blake2b(f"{batch_id}:{index}:{salt}".encode(), digest_size=12).hexdigest()


def _usage(usage: dict[str, int] | None, *, embeddings: bool) -> dict[str, int]:
    prompt = int((usage or {}).get("prompt_tokens", 0))
    if embeddings:
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    completion = int((usage or {}).get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _embedding(vector: Any, encoding_format: str) -> Any:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def response_body(
    *,
    endpoint: str,
    model: str,
    created: int,
    response_id: str,
    body: dict[str, Any],
    output: Any,
    usage: dict[str, int] | None,
) -> dict[str, Any]:
    """The body OpenAI's synchronous endpoint would have answered for this output."""
    if endpoint == "/v1/embeddings":
        vectors = [output] if isinstance(body.get("input"), str) else output
        fmt = body.get("encoding_format", "float")
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _embedding(v, fmt)}
                for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": _usage(usage, embeddings=True),
        }
    text, reason = output["text"], output["finish_reason"]
    if endpoint == "/v1/chat/completions":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": reason,
        }
        kind, prefix = "chat.completion", "chatcmpl-"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        kind, prefix = "text_completion", "cmpl-"
    return {
        "id": prefix + response_id,
        "object": kind,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": _usage(usage, embeddings=False),
        "system_fingerprint": None,
    }


def render_result(
    *,
    batch_id: str,
    endpoint: str,
    model: str,
    created: int,
    body: dict[str, Any] | None,
    result: dict[str, Any],
) -> tuple[bytes, bool]:
    """(line, failed) for one finished item: a native result line as an output line, or a
    native error line as an error-file line (with an error response body and `error`)."""
    index, custom_id = result["index"], result.get("custom_id")
    request_id = "req_" + _digest(batch_id, index, "request")
    line: dict[str, Any] = {
        "id": "batch_req_" + _digest(batch_id, index, "line"),
        "custom_id": custom_id,
    }
    error = result_error(result)
    if error is None and body is not None:
        line["response"] = {
            "status_code": 200,
            "request_id": request_id,
            "body": response_body(
                endpoint=endpoint,
                model=model,
                created=created,
                response_id=_digest(batch_id, index, "response"),
                body=body,
                output=result["output"],
                usage=result.get("usage"),
            ),
        }
        line["error"] = None
        return orjson.dumps(line), False
    error = error or {"code": "internal_error", "message": "no request body was kept"}
    server = error["code"] in SERVER_CODES
    line["response"] = {
        "status_code": 500 if server else 400,
        "request_id": request_id,
        "body": {
            "error": {
                "message": error["message"],
                "type": "server_error" if server else "invalid_request_error",
                "param": None,
                "code": error["code"],
            }
        },
    }
    line["error"] = {"code": error["code"], "message": error["message"]}
    return orjson.dumps(line), True


def render_unrun(*, batch_id: str, index: int, custom_id: str | None, ends_as: str) -> bytes:
    """The error-file line of a request that never ran (the batch expired or was cancelled)."""
    code, message = UNRUN_ERRORS.get(ends_as, UNRUN_ERRORS["cancelled"])
    return orjson.dumps(
        {
            "id": "batch_req_" + _digest(batch_id, index, "line"),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
    )
