"""The query of GET /v1/usage, checked: a range of UTC days (YYYY-MM-DD, both ends
included, at most MAX_DAYS) and the page cursor; each mistake a 400 with its own code."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, timedelta

import orjson

from core.errors import InvalidInput, shown

# A year and a day: a leap year whole, and a bound on what one request sums.
MAX_DAYS = 366
DEFAULT_DAYS = 30
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_CURSOR_PART = 200


def parse_day(value: str, param: str) -> date:
    """A YYYY-MM-DD date, or InvalidInput (invalid_date)."""
    if _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(
        f"{param} must be a date as YYYY-MM-DD (UTC), not {shown(value)}",
        code="invalid_date",
        param=param,
    )


def usage_range(start: str | None, end: str | None, today: date) -> tuple[str, str]:
    """The days a usage query covers: end defaults to today (UTC), start to DEFAULT_DAYS
    days up to end; invalid_range when end is before start, range_too_long past MAX_DAYS."""
    last = parse_day(end, "end") if end is not None else today
    first = parse_day(start, "start") if start is not None else last - timedelta(DEFAULT_DAYS - 1)
    if last < first:
        raise InvalidInput(
            f"end ({last}) is before start ({first})", code="invalid_range", param="end"
        )
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise InvalidInput(
            f"the range covers {days} days; at most {MAX_DAYS} per request",
            code="range_too_long",
            param="start",
            details={"days": days, "max_days": MAX_DAYS},
        )
    return first.isoformat(), last.isoformat()


def encode_cursor(tenant_id: str, key: str) -> str:
    """The opaque cursor after a row: its tenant and key."""
    return base64.urlsafe_b64encode(orjson.dumps([tenant_id, key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The tenant and key a cursor holds, or InvalidInput (invalid_cursor)."""
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        parts = None
    if (
        isinstance(parts, list)
        and len(parts) == 2
        and all(isinstance(p, str) and "\x00" not in p for p in parts)
        and all(len(p) <= MAX_CURSOR_PART for p in parts)
    ):
        return parts[0], parts[1]
    raise InvalidInput(
        "after must be a next_cursor this route returned", code="invalid_cursor", param="after"
    )
