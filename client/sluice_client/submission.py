"""How a job's inputs go up: inline in `POST /v1/jobs` while they are few and small, else as
a streamed file upload that the job then names. Decided by reading the inputs only up to
the inline limit, so a large job is never held whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

ON_INVALID = ("fail", "skip")


def job_options(
    *,
    model: str,
    params: Mapping[str, Any] | None,
    priority: int,
    metadata: Mapping[str, str] | None,
    expires_after: int | None,
) -> dict[str, Any]:
    """The fields of a job besides its inputs."""
    options: dict[str, Any] = {
        "model": model,
        "params": dict(params or {}),
        "priority": priority,
        "metadata": dict(metadata or {}),
    }
    if expires_after is not None:
        options["expires_after"] = expires_after
    return options


def inline_body(options: Mapping[str, Any], lines: list[bytes]) -> bytes:
    """The JSON body of an inline job, spliced from the already-encoded input lines."""
    rest = json.dumps(dict(options), ensure_ascii=False, separators=(",", ":"))
    inputs = b",".join(line.rstrip(b"\n") for line in lines)
    return b'{"inputs":[' + inputs + b"]," + rest[1:].encode("utf-8")


def check_on_invalid(on_invalid: str) -> None:
    """Refuse an on_invalid the API does not take, before anything is sent."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {on_invalid!r}")


def file_job_body(options: Mapping[str, Any], file_id: str, on_invalid: str) -> dict[str, Any]:
    """The JSON body of a job made of an uploaded file."""
    check_on_invalid(on_invalid)
    return {**options, "input_file_id": file_id, "on_invalid": on_invalid}


def upload_fields(purpose: str, expires_after: int | None) -> dict[str, str]:
    """The form fields of a file upload."""
    fields = {"purpose": purpose}
    if expires_after is not None:
        fields["expires_after[anchor]"] = "created_at"
        fields["expires_after[seconds]"] = str(int(expires_after))
    return fields


def _fits(taken: list[bytes], held: int, line: bytes, max_items: int, max_bytes: int) -> bool:
    return len(taken) < max_items and held + len(line) <= max_bytes


def take_inline(
    lines: Iterator[bytes], *, max_items: int, max_bytes: int
) -> tuple[list[bytes], bytes | None]:
    """Lines read while they fit inline: (those lines, None) when the inputs end within the
    limits, else (those lines, the first line that did not fit; the rest stay in `lines`)."""
    taken: list[bytes] = []
    held = 0
    for line in lines:
        if not _fits(taken, held, line, max_items, max_bytes):
            return taken, line
        taken.append(line)
        held += len(line)
    return taken, None


async def atake_inline(
    lines: AsyncIterator[bytes], *, max_items: int, max_bytes: int
) -> tuple[list[bytes], bytes | None]:
    """take_inline for an async iterator of lines."""
    taken: list[bytes] = []
    held = 0
    async for line in lines:
        if not _fits(taken, held, line, max_items, max_bytes):
            return taken, line
        taken.append(line)
        held += len(line)
    return taken, None
