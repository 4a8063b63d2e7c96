"""Loading runners once per process, for the models a worker serves."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from models.embed import EmbedRunner
from models.spec import ModelSpec

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What every task runner offers the worker."""

    task: str


RUNNER_CLASSES: dict[str, type] = {"embed": EmbedRunner}


def load_runners(specs: Iterable[ModelSpec]) -> dict[str, EmbedRunner]:
    """Instantiate (load) one runner per spec; called once when a worker starts."""
    runners: dict[str, EmbedRunner] = {}
    for spec in specs:
        log.info("loading model %s (%s) from %s", spec.name, spec.task, spec.source)
        runners[spec.name] = RUNNER_CLASSES[spec.task](spec)
    return runners
