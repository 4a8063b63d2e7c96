"""Anthropic's error envelope for the /v1/messages routes: `{"type": "error", "error":
{"type", "message"}}`, its type chosen by status so the official `anthropic` client raises
its typed exceptions. sluice's machine-readable code and param ride along in the error
object (the client ignores them); every other route keeps sluice's envelope."""

from __future__ import annotations

from typing import Any

ANTHROPIC_PREFIX = "/v1/messages"
# Anthropic's error type for each status sluice answers with.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}


def is_anthropic_path(path: str) -> bool:
    """Whether a request path is an Anthropic-shaped route's."""
    return path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/")


def anthropic_error_body(
    *, status: int, message: str, code: str, param: str | None = None, details: Any = None
) -> dict[str, Any]:
    """The Anthropic error envelope of an answer with this status."""
    kind = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"type": kind, "message": message, "code": code, "param": param}
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error}
