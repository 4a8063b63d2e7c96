"""The result-line contract, in one place: a result line is `{"custom_id", "index",
"output"}` (with `usage`, `truncated` when it was, and `explanation` when the job asked for
one) or `{"custom_id", "index", "error": {"code", "message"}}`, one JSON object written by
orjson. Writers build lines here; readers parse them, find their index and tell failures
here."""

from __future__ import annotations

from typing import Any

import orjson


def result_line(
    index: int,
    custom_id: str | None,
    output: Any,
    usage: dict[str, int] | None = None,
    truncated: bool = False,
    explanation: Any = None,
) -> bytes:
    """One successful result line (with its token usage; `truncated` only when it was, and
    `explanation` only when there is one)."""
    line: dict[str, Any] = {"custom_id": custom_id, "index": index, "output": output}
    if usage is not None:
        line["usage"] = usage
    if truncated:
        line["truncated"] = True
    if explanation is not None:
        line["explanation"] = explanation
    return orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY)


def error_line(index: int, custom_id: str | None, code: str, message: str) -> bytes:
    """One failed result line."""
    return orjson.dumps(
        {"custom_id": custom_id, "index": index, "error": {"code": code, "message": message}}
    )


# orjson writes no spaces and escapes every quote inside a string, so these bytes can only
# be an "error" key whose value is an object starting with "code" (a failed item).
ERROR_MARK = b'"error":{"code"'


def is_failure(line: bytes) -> bool:
    """Whether a result line records a failed item (parsed only when the mark is there)."""
    if ERROR_MARK not in line:
        return False
    item = orjson.loads(line)
    return isinstance(item, dict) and isinstance(item.get("error"), dict)


def parse_result_line(line: bytes) -> dict[str, Any]:
    """A result line as its JSON object."""
    item: dict[str, Any] = orjson.loads(line)
    return item


def result_index(line: bytes) -> int:
    """The input index a result line is for."""
    index: int = orjson.loads(line)["index"]
    return index


def result_error(item: dict[str, Any]) -> dict[str, Any] | None:
    """A parsed result line's error ({"code", "message"}), or None for a success."""
    error = item.get("error")
    return error if isinstance(error, dict) else None
