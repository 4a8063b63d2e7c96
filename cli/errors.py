"""What an error that escaped a command means to the person who typed it: a line saying
what went wrong, a line saying what to do, and the exit status. Modules are looked up in
sys.modules, not imported: an error of a library that was never loaded cannot occur."""

from __future__ import annotations

import sys
from typing import Any

from cli.app import program

# (message, hint or None, exit status)
Explained = tuple[str, str | None, int]
KEY_HINT = "create one with `{p} keys create --tenant NAME`, then `export SLUICE_API_KEY=...`"


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def client_error(exc: Any) -> Explained:
    """A sluice_client error: the server's code and message, and the usual way out."""
    import sluice_client as sc

    p = program()
    if isinstance(exc, sc.APITimeoutError):
        return str(exc.message), "the API may be overloaded: try again, or raise its timeout", 1
    if isinstance(exc, sc.APIConnectionError):
        return (
            str(exc.message),
            f"is the API running? start it with `{p} api`, or point SLUICE_API_URL at it",
            1,
        )
    if isinstance(exc, sc.AuthenticationError):
        return (
            f"the API refused the key ({exc.code}): {exc.message}",
            "SLUICE_API_KEY must be a key of this API's database: " + KEY_HINT.format(p=p),
            1,
        )
    if isinstance(exc, sc.NotFoundError):
        return (
            str(exc),
            f"check the id (`{p} jobs` and `{p} files` list yours); "
            "another key's jobs are not visible with this one",
            1,
        )
    if isinstance(exc, sc.PermissionDeniedError):
        return str(exc), "this needs an admin key (`keys create --admin`)", 1
    if isinstance(exc, sc.RateLimitError | sc.ServiceUnavailableError):
        wait = f"in {exc.retry_after:.0f} s" if exc.retry_after else "in a moment"
        return str(exc), f"try again {wait}", 1
    line = f" (line {exc.line})" if exc.line is not None else ""
    return f"{exc}{line}", None, 1


def settings_error(exc: Any) -> Explained:
    """pydantic's report on the settings object, as the variables a person sets."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"SLUICE_{where.upper()}: {message}" if where else message)
    return (
        f"invalid settings: {'; '.join(problems)}",
        "set them in the environment or in .env (README, Configuration)",
        2,
    )


def database_error(exc: Any) -> Explained:
    """A database that does not answer (never showing the URL's password)."""
    from core.config import settings

    where = settings.database_url.split("@")[-1]
    return (
        f"cannot use the database at {where}: {_first_line(getattr(exc, 'orig', exc))}",
        "is it running, and does SLUICE_DATABASE_URL point at it?",
        1,
    )


def explain(exc: BaseException) -> Explained:
    """The message, hint and exit status of an error no command caught."""
    cli_client = sys.modules.get("cli.client")
    if cli_client is not None and isinstance(exc, cli_client.MissingKey):
        return str(exc), KEY_HINT.format(p=program()), 2
    client = sys.modules.get("sluice_client")
    if client is not None and isinstance(exc, client.SluiceError):
        return client_error(exc)
    core_errors = sys.modules.get("core.errors")
    if core_errors is not None and isinstance(exc, core_errors.SluiceError):
        # SchemaOutdated says "run `sluice migrate`" itself.
        return f"{exc.code}: {exc.message}", None, 1
    pydantic = sys.modules.get("pydantic")
    if (
        pydantic is not None
        and isinstance(exc, pydantic.ValidationError)
        and exc.title == "Settings"
    ):
        return settings_error(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return database_error(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", None, 1
    return (
        f"unexpected error: {type(exc).__name__}: {_first_line(exc)}",
        f"run `{program()} --debug ...` to see the traceback (and report it if it is a bug)",
        1,
    )
