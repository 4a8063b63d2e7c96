"""A background thread that records finished chunks while the next one computes: one
record at a time, so results never pile up in memory (a second hand-off waits)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Recorder:
    """Runs one callable at a time on its own thread; `submit` waits for the previous."""

    def __init__(self) -> None:
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def submit(self, action: Callable[[], None]) -> None:
        """Start `action` in the background once the previous one has finished."""
        self._idle.wait()
        self._idle.clear()

        def run() -> None:
            try:
                action()
            except Exception:  # its lease lapses and the chunk runs again
                log.exception("recording a chunk failed")
            finally:
                self._idle.set()

        self._thread = threading.Thread(target=run, name="sluice-recorder", daemon=True)
        self._thread.start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the record in flight; False if it is still running after timeout."""
        return self._idle.wait(timeout)
