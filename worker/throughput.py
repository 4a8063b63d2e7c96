"""Items per second a worker recorded per model over the last minute (what its heartbeat
tells the API's model status)."""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_SECONDS = 60.0
# Chunks take seconds; even tiny ones at this many per window keep the memory trivial.
MAX_ENTRIES = 10_000


class ItemRate:
    """A sliding window of (time, model, items) per recorded chunk."""

    def __init__(self, window: float = WINDOW_SECONDS, started: float | None = None) -> None:
        self.window = window
        self.started = time.time() if started is None else started
        self._entries: deque[tuple[float, str, int]] = deque(maxlen=MAX_ENTRIES)
        self._lock = threading.Lock()

    def add(self, model: str, items: int, now: float | None = None) -> None:
        """Count items recorded now."""
        with self._lock:
            self._entries.append((time.time() if now is None else now, model, items))

    def per_second(self, now: float | None = None) -> dict[str, float]:
        """Items/s per model over the window (over the time since start, while the worker
        is younger than the window), for models that recorded any."""
        now = time.time() if now is None else now
        horizon = now - self.window
        rates: dict[str, float] = {}
        with self._lock:
            while self._entries and self._entries[0][0] < horizon:
                self._entries.popleft()
            for _, model, items in self._entries:
                rates[model] = rates.get(model, 0.0) + items
        span = max(1.0, min(self.window, now - self.started))
        return {model: items / span for model, items in rates.items()}
