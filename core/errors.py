"""The one exception hierarchy: kinds and machine-readable codes, no HTTP (api/errors.py maps
each kind to a status)."""

from __future__ import annotations

from typing import Any

# What an error message quotes of a value the client sent: at most this many characters.
SHOWN_CHARS = 100


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A client's value as an error message quotes it: its repr, cut to `limit` characters
    with its full length said, so a 1 MB model name is not echoed back whole."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class SluiceError(Exception):
    """Base of every error sluice raises on purpose."""

    code = "internal_error"
    kind = "server_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.details = details


class InvalidInput(SluiceError):
    """The request or one of its inputs is malformed."""

    code = "invalid_input"
    kind = "invalid_request_error"


class NotFound(SluiceError):
    """The resource does not exist or belongs to another tenant."""

    code = "not_found"
    kind = "invalid_request_error"


class Unauthorized(SluiceError):
    """No valid API key was presented."""

    code = "invalid_api_key"
    kind = "authentication_error"


class Forbidden(SluiceError):
    """The key is valid but lacks the scope the request needs."""

    code = "insufficient_scope"
    kind = "permission_error"


class ModelUnavailable(SluiceError):
    """The model is not registered, or cannot be loaded here."""

    code = "unknown_model"
    kind = "invalid_request_error"


class TooLarge(SluiceError):
    """The request exceeds a size limit."""

    code = "request_too_large"
    kind = "invalid_request_error"


class QuotaExceeded(SluiceError):
    """The tenant is over a rate limit or quota; retry later where waiting helps (retry_after
    None: it does not, something must be deleted or the quota raised)."""

    code = "rate_limit_exceeded"
    kind = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Conflict(SluiceError):
    """The resource is in a state that does not allow the operation."""

    code = "conflict"
    kind = "invalid_request_error"


class ServiceUnavailable(SluiceError):
    """A backing service (database, Redis) is unreachable, or the process is at a bound;
    retry later."""

    code = "service_unavailable"
    kind = "server_error"

    def __init__(self, message: str, *, retry_after: int = 5, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class SchemaOutdated(SluiceError):
    """The database schema is not at the migrations' head: run `sluice migrate`."""

    code = "schema_outdated"
    kind = "server_error"


class LeaseLost(SluiceError):
    """Another task holds the lease now (or the job was cancelled): stop, keep nothing."""

    code = "lease_lost"
