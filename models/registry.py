"""Loading runners once per process, for the models a worker serves."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from models.classify import ClassifyRunner
from models.embed import EmbedRunner
from models.encoder import EncoderRunner
from models.spec import ModelSpec

log = logging.getLogger(__name__)

RUNNER_CLASSES: dict[str, type[EncoderRunner]] = {"embed": EmbedRunner, "classify": ClassifyRunner}


def load_runners(specs: Iterable[ModelSpec]) -> dict[str, EncoderRunner]:
    """Instantiate (load) one runner per spec; called once when a worker starts."""
    runners: dict[str, EncoderRunner] = {}
    for spec in specs:
        log.info("loading model %s (%s) from %s", spec.name, spec.task, spec.source)
        runners[spec.name] = RUNNER_CLASSES[spec.task](spec)
    return runners
