"""The client's exceptions: one per kind of failure, each carrying the server's code,
message and HTTP status, built from the API's error body `{"error": {message, type, param,
code, details?}}`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from sluice_client.retry import parse_retry_after


class SluiceError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.type = type
        self.param = param
        self.details = details
        self.retry_after = retry_after

    @property
    def line(self) -> int | None:
        """The line of an uploaded file that the error is about, where the server names one."""
        if isinstance(self.details, Mapping) and isinstance(self.details.get("line"), int):
            return int(self.details["line"])
        return None

    def __str__(self) -> str:
        head = f"HTTP {self.status} {self.code or ''}" if self.status else (self.code or "error")
        return f"{head}: {self.message}"


class APIConnectionError(SluiceError):
    """The API could not be reached, or the connection broke before an answer came."""


class APITimeoutError(APIConnectionError):
    """The API did not answer within the timeout."""


class InvalidRequestError(SluiceError):
    """The request or one of its inputs is invalid (400, 422); `line` names a file's line."""


class RequestTooLargeError(InvalidRequestError):
    """The request is over a size limit of the server (413)."""


class AuthenticationError(SluiceError):
    """No API key, or one the server does not know (401)."""


class PermissionDeniedError(SluiceError):
    """The key may not do this (403), e.g. a tenant key asking for another tenant."""


class NotFoundError(SluiceError):
    """No such job or file, or one of another tenant (404)."""


class ConflictError(SluiceError):
    """The resource's state does not allow the operation (409), e.g. nothing to retry."""


class RateLimitError(SluiceError):
    """Too many requests (429); `retry_after` says when to try again."""


class ServerError(SluiceError):
    """The server failed (5xx)."""


class ServiceUnavailableError(ServerError):
    """A backing service of the API is down (503); `retry_after` says when to try again."""


ERRORS_BY_STATUS: dict[int, type[SluiceError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(status: int) -> type[SluiceError]:
    """The exception class of an HTTP error status."""
    if status in ERRORS_BY_STATUS:
        return ERRORS_BY_STATUS[status]
    if status >= 500:
        return ServerError
    return InvalidRequestError if 400 <= status < 500 else SluiceError


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> SluiceError:
    """The typed exception for an error answer (its body need not be the API's envelope:
    a proxy's HTML page still gives an error with the status)."""
    envelope: Any = None
    with contextlib.suppress(ValueError):
        envelope = json.loads(body)
    err = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(err, dict):
        text = body.decode("utf-8", "replace").strip()[:500]
        err = {"message": text or f"HTTP {status}", "code": f"http_{status}"}
    return error_class(status)(
        str(err.get("message") or f"HTTP {status}"),
        code=err.get("code"),
        status=status,
        type=err.get("type"),
        param=err.get("param"),
        details=err.get("details"),
        retry_after=parse_retry_after(headers.get("retry-after")),
    )
