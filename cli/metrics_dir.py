"""The directory several API processes share their Prometheus values through
(prometheus_client's multiprocess mode): set up before they start, emptied of a previous
run's values, removed after when sluice made it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[Path | None]:
    """For `workers` > 1 API processes, a fresh directory in PROMETHEUS_MULTIPROC_DIR (the
    processes inherit it), removed afterwards. A directory the operator set is used at any
    process count and only emptied of old values (`*.db`), never removed."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's values would be summed in
            stale.unlink()
        yield path
        return
    if workers <= 1:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="sluice-api-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
