"""Numbers and times as people read them: "3 min ago", "in 29 days", "1.2 MiB", "1m 05s"."""

from __future__ import annotations

import time

# (seconds in the unit, its name), largest first.
UNITS = ((86400, "day"), (3600, "h"), (60, "min"), (1, "s"))


def _span(seconds: float) -> str:
    """A positive span in its largest whole unit: 45 s, 3 min, 2 h, 5 days."""
    for size, name in UNITS:
        if seconds >= size or size == 1:
            count = int(seconds // size)
            if name == "day":
                return f"{count} day" + ("s" if count != 1 else "")
            return f"{count} {name}"
    raise AssertionError("unreachable")


def relative_time(ts: float | None, now: float | None = None) -> str:
    """An epoch time relative to now: "just now", "3 min ago", "in 29 days", or "-"."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    if abs(delta) < 5:
        return "just now"
    return f"{_span(delta)} ago" if delta > 0 else f"in {_span(-delta)}"


def duration(seconds: float | None) -> str:
    """A length of time: "850 ms", "12.3 s", "4m 05s", "2h 10m", or "-"."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def size(count: int | None) -> str:
    """Bytes in binary units: "812 B", "1.2 KiB", "3.4 GiB"."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def items_per_second(rate: float | None) -> str:
    """A throughput: "1,234 items/s", "0.5 items/s", or "-"."""
    if not rate:
        return "-"
    return f"{rate:,.0f} items/s" if rate >= 10 else f"{rate:.2g} items/s"
